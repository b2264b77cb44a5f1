"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename.

A kill at any moment leaves either the previous complete file or the new complete file, never a
half-written one that looks valid (rename is atomic on POSIX and on Windows for same-volume moves).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    Example:
        >>> with atomic_path("out/video.mp4") as tmp:  # doctest: +SKIP
        ...     write_video(tmp)
    """
    path = Path(path)
    tmp_path = _temp_next_to(path, suffix)
    try:
        yield tmp_path
        _publish(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# The steps of atomic_path live in plain functions: mutation testing (mutmut) skips decorated functions.
def _temp_next_to(path: Path, suffix: str | None) -> Path:
    """A new empty temporary file in ``path``'s folder, with the mode a plain ``open()`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else (path.suffix + ".tmp"), dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (0666 & ~umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    return tmp_path


def _publish(tmp_path: Path, path: Path) -> None:
    """Flush ``tmp_path`` to disk, then rename it onto ``path`` (atomic)."""
    with open(tmp_path, "rb") as fh:  # flush the data to disk before it becomes visible
        os.fsync(fh.fileno())
    os.replace(tmp_path, path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open ``path`` for writing atomically (text or binary ``mode``).

    Text is UTF-8 with ``surrogateescape``: a file name that is not valid UTF-8 is written as its original
    bytes (CSV files), never an error. JSON goes through :func:`to_json`, which escapes such names instead.

    Example:
        >>> with atomic_open("summary.json") as fh:  # doctest: +SKIP
        ...     fh.write("{}")
    """
    if "b" not in mode:  # text: UTF-8 unless asked otherwise (newline= for csv files included)
        kwargs.setdefault("encoding", "utf-8")
        # a file name that is not UTF-8 (lone surrogates in Python) is written as its original bytes
        kwargs.setdefault("errors", "surrogateescape")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


# tempfile.mkstemp's names: PREFIX + 8 characters of [a-z0-9_] + SUFFIX; ours are ".NAME." + that + a suffix
# holding ".tmp" (atomic_path: ".pt.tmp", ".json.tmp"; the video writer: ".tmp.mp4")
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}(\.[^.]+)*\.tmp(\.[^.]+)?")


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of this tool's hidden temporaries (``.NAME.<8 random>.<suffix>.tmp``, as
    :func:`atomic_path` and the video writer name them); a user's ``.notes.tmp`` is not.

    Example:
        >>> [is_temporary(n) for n in (".last.pt.k2j3ab_d.pt.tmp", ".annotated.x1y2z3w4.tmp.mp4", ".notes.tmp")]
        [True, True, False]
    """
    return _TEMPORARY.fullmatch(name) is not None


def remove_temporaries(folder: str | os.PathLike[str]) -> list[str]:
    """Delete the temporaries (:func:`is_temporary`) directly in ``folder`` left by a killed or failed run.

    Only call this while no other process writes into ``folder`` (a job holding its lock); returns the names.

    Example:
        >>> remove_temporaries("out/run")  # doctest: +SKIP
        ['.last.pt.k2j3.pt.tmp']
    """
    gone = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return gone
    for e in entries:
        if is_temporary(e.name) and not e.is_dir(follow_symlinks=False):
            try:
                os.unlink(e.path)
                gone.append(e.name)
            except OSError:
                pass
    return gone


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as pretty JSON atomically."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_open(path) as fh:
        fh.write(text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def to_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(obj, ensure_ascii=False)`` that stays valid UTF-8 for file names that are not.

    A name with bytes that are not UTF-8 reaches Python with lone surrogates (``surrogateescape``); they are
    written as ``\\udcXX`` escapes, so ``os.fsencode(json.loads(text)[...])`` gives the original bytes back.

    Example:
        >>> print(to_json({"file": os.fsdecode(b"bad\\xffname.jpg"), "café": 1}))
        {"file": "bad\\udcffname.jpg", "café": 1}
    """
    text = json.dumps(obj, ensure_ascii=False, default=_json_default, **kwargs)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _json_default(o: Any) -> Any:
    # numpy scalars/arrays and Paths show up in metrics; make them JSON without importing numpy here.
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
