"""The output-folder rule: the results of one job never mix with another job's.

Every command that writes into an ``--out`` folder (``predict``, ``video``) records what it is doing in
``job.json`` there: the command, the *identity* of the job (inputs, model file and its sha256, detector and
output settings) and the names of the outputs it owns. When a command starts:

* the folder is missing or empty (hidden temporary files left by a killed run do not count) → a new job;
* ``job.json`` records the **same job** → the job resumes (what is already done is kept);
* anything else (another job's results, files of unknown origin) → refused with a one-line error, unless
  ``overwrite=True`` (``--overwrite``), which replaces exactly this command's output set (the names it
  writes, plus those the old ``job.json`` lists): files the new run always rewrites are replaced when it
  ends (a killed run leaves the earlier complete ones), the others are deleted before it starts. A folder
  of outputs (``annotated/``, one video's folder) is never deleted whole: only the files the old
  ``job.json`` lists as that job's own (``owned``) go, and the folder itself only once it is empty. Other
  files are left alone.

Every output name derived from an input name (a video's folder, an annotated copy) is made a single safe
path component by :func:`safe_name` and joined by :func:`child`, which refuses anything else — so nothing
is ever written outside ``--out``.

So stale annotated images never sit beside a new ``predictions.csv``, and another clip's ``annotated.mp4``
never sits beside a new ``frames.csv``.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eacfer.utils.atomic import remove_temporaries, write_json
from eacfer.utils.integrity import file_sha256  # noqa: F401  (re-exported: job records name their model)

log = logging.getLogger(__name__)

MANIFEST = "job.json"
FORMAT = "eacfer-job"


class OutputFolderError(ValueError):
    """``--out`` holds another job's results (a one-line, user-facing message)."""


@dataclass
class Claim:
    """What :func:`claim_output_dir` decided: ``mode`` is ``"new"`` or ``"resume"``."""

    out: Path
    mode: str
    previous: dict[str, Any] | None = None
    removed: list[str] = field(default_factory=list)


def read_manifest(out: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``job.json`` of ``out``, or ``None`` when there is none (or it is not one of ours)."""
    p = Path(out) / MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def write_manifest(out: str | os.PathLike[str], command: str, identity: dict[str, Any], outputs: Iterable[str],
                   status: str, **extra: Any) -> None:
    """Write ``job.json`` atomically (``status``: ``running``, ``interrupted`` or ``complete``)."""
    write_json(Path(out) / MANIFEST, {"format": FORMAT, "command": command, "status": status,
                                      "identity": identity, "outputs": sorted(set(outputs)), **extra})


def _visible(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if not p.name.startswith("."))


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("command") != new.get("command"):
        return f"it holds `eacfer {old.get('command')}` results"
    a, b = old.get("identity") or {}, new.get("identity") or {}
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "it holds the results of a different job (" + ", ".join(keys[:4]) + " differ)" if keys else \
        "it holds the results of a different job"


# separators, control characters, undecodable bytes (surrogates) and the characters Windows refuses
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|\ud800-\udfff]')
_MAX_NAME_BYTES = 120  # well under every file system's 255-byte limit, room for "_12" and suffixes


def safe_name(text: str, default: str = "item") -> str:
    """``text`` made one safe path component: never ``.``/``..``, no separators or control characters.

    Unsafe characters (``/ \\ : * ? " < > |``, control characters, bytes that are not UTF-8) become ``_``;
    leading dots and dashes become ``_`` (no hidden names, nothing read as an option); trailing dots and
    spaces go; names are cut to 120 UTF-8 bytes; an empty result is ``default``.

    Example:
        >>> [safe_name(s) for s in ["clip", "..", ".", "a/b", "-rf", os.fsdecode(b"bad\\xffname"), ""]]
        ['clip', '__', '_', 'a_b', '_rf', 'bad_name', 'item']
    """
    s = _UNSAFE.sub("_", text).strip(" ")
    s = re.sub(r"^[.\-]+", lambda m: "_" * len(m.group()), s).rstrip(". ")  # ".." -> "__", never a dot name
    while len(s.encode("utf-8")) > _MAX_NAME_BYTES:
        s = s[:-1]
    return s or default


def unique_name(base: str, used: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2`` … — the first not in ``used`` (compared case-blind, as macOS and
    Windows do); the name is added to ``used``.

    Example:
        >>> used = {"clip"}; unique_name("clip", used), unique_name("Clip", used)
        ('clip_1', 'Clip_2')
    """
    taken = {u.lower() for u in used}
    name, i = base, 1
    while name.lower() in taken:
        name, i = f"{base}_{i}", i + 1
    used.add(name)
    return name


def child(out: str | os.PathLike[str], name: str) -> Path:
    """``out / name`` for a ``name`` that is one safe path component (as :func:`safe_name` makes).

    Raises ``ValueError`` for anything else (``..``, separators, …): the check sits where the path is built.

    Example:
        >>> child("out", "clip").as_posix()
        'out/clip'
    """
    if not name or safe_name(name) != name:
        raise ValueError(f"{out}: refused to write {name!r} (not a single safe file name inside the output folder)")
    return Path(out) / name


def remove_outputs(out: Path, names: Iterable[str], owned: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """Delete the named outputs directly in ``out``; returns the names that are gone.

    A file (or link) is deleted. A folder is never deleted whole: only the files that ``owned[name]``
    matches (relative paths or ``fnmatch`` patterns recorded by the job that wrote them) and this tool's
    own temporaries go, then the folders left empty; anything else in it stays (and so does the folder).

    Example:
        >>> remove_outputs(Path("out"), ["summary.json", "clip"], {"clip": ["frames.csv"]})  # doctest: +SKIP
        ['clip', 'summary.json']
    """
    gone = []
    owned = owned or {}
    for name in sorted(set(names)):
        if not name or safe_name(name) != name:  # never a path: ``..``, ``a/b`` are not output names
            continue
        p = out / name
        if p.is_dir() and not p.is_symlink():
            _remove_owned(p, owned.get(name) or ())
            if p.exists():
                continue
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        gone.append(name)
    return gone


def _remove_owned(folder: Path, patterns: Iterable[str]) -> None:
    """Delete the files of ``folder`` that ``patterns`` match, our temporaries, then the emptied folders."""
    pats = list(patterns)
    literal = {p for p in pats if not any(c in p for c in "*?[")}
    globs = [p for p in pats if p not in literal]
    dirs = []
    for dirpath, dirnames, filenames in os.walk(folder, topdown=True):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        dirs.append(Path(dirpath))
        for f in filenames:
            path = Path(dirpath) / f
            rel = path.relative_to(folder).as_posix()
            if rel in literal or any(fnmatch.fnmatchcase(rel, g) for g in globs):
                path.unlink(missing_ok=True)
        remove_partials(Path(dirpath))
    for d in reversed(dirs):  # deepest first; a folder with anything else in it stays
        try:
            d.rmdir()
        except OSError:
            pass


def remove_partials(out: Path) -> None:
    """Delete hidden in-progress files of a killed run (``.NAME.partial`` and atomic-write temporaries)."""
    for p in out.iterdir():
        if p.name.startswith(".") and p.name.endswith(".partial") and not p.is_symlink():
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    remove_temporaries(out)


def claim_output_dir(
    out: str | os.PathLike[str],
    command: str,
    identity: dict[str, Any],
    outputs: Iterable[str],
    overwrite: bool = False,
    replaced_at_end: Iterable[str] = (),
) -> Claim:
    """Apply the output-folder rule to ``out`` for this job; create the folder when missing.

    Args:
        out: the ``--out`` folder.
        command: ``"predict"``, ``"video"``, …
        identity: JSON-able description of the job; equal identities mean "the same job".
        outputs: names (files or folders directly in ``out``) this command writes.
        overwrite: replace another job's results instead of refusing.
        replaced_at_end: outputs this run always renames a complete new version onto when it ends: with
            ``overwrite`` they are left in place until then (so a killed run leaves the earlier complete
            file, never a half one); every other output of the set is deleted at once.

    Raises:
        OutputFolderError: ``out`` holds something else and ``overwrite`` is False.

    Example:
        >>> claim = claim_output_dir("out/pred", "predict", {"inputs": ["photos"]}, ["predictions.csv"])  # doctest: +SKIP
        >>> claim.mode                                                                                     # doctest: +SKIP
        'new'
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    prev = read_manifest(out)
    new = {"command": command, "identity": _plain(identity)}
    if prev is not None and prev.get("command") == command and prev.get("identity") == new["identity"]:
        return Claim(out, "resume", prev)
    visible = _visible(out)
    if not visible:
        remove_partials(out)
        return Claim(out, "new")
    if not overwrite:
        why = _describe_difference(prev, new) if prev is not None else \
            f"it is not empty ({', '.join(p.name for p in visible[:3])}{', …' if len(visible) > 3 else ''})"
        raise OutputFolderError(f"{out}: {why}; choose another --out, or add --overwrite to replace "
                                f"the earlier `eacfer {command}` results")
    names = (set(outputs) | {MANIFEST} | set((prev or {}).get("outputs") or [])) - set(replaced_at_end)
    owned = (prev or {}).get("owned")
    removed = remove_outputs(out, names, owned if isinstance(owned, dict) else None)
    remove_partials(out)
    if removed:
        log.info("--overwrite: removed the earlier results in %s: %s", out, ", ".join(removed))
    return Claim(out, "new", prev, removed)


def _plain(obj: Any) -> Any:
    """The JSON round trip of ``obj`` (so tuples and lists compare equal to what job.json holds)."""
    return json.loads(json.dumps(obj, default=str))
