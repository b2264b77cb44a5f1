"""The on-disk cache of ONNX exports of ``.pt`` models (fp32 and checked int8), bounded in size.

Location: ``$EACFER_CACHE_DIR/onnx`` (default ``~/.cache/eacfer/onnx``, or ``$XDG_CACHE_HOME/eacfer/onnx``).

Entries are named ``<content>--<source>.onnx``: ``<content>`` is the SHA-256 of the model file's bytes
plus the torch version and the variant (``cams`` fp32, ``cams-int8``), so a changed model is never served
from a stale export; ``<source>`` is a hash of the model file's path. Two rules keep the cache small:

- **one entry per model file and variant**: writing an export for a path drops the older exports made for
  that same path (a model.pt rewritten by training or ``--resume`` replaces its cached export instead of
  leaving another 45 MB file behind);
- **size cap, least recently used first**: every use touches the entry's modification time; after each
  write the least recently used entries are deleted until the cache holds at most
  ``$EACFER_CACHE_MAX_MB`` (default 2048 MB). The entry just written is always kept.

A refused int8 quantisation leaves a small ``.refused.json`` record so it is not retried on every start.
When the cache folder is not writable, exports stay in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from eacfer.utils.integrity import file_sha256

log = logging.getLogger(__name__)

DEFAULT_MAX_MB = 2048
SUFFIXES = (".onnx", ".refused.json")


def cache_dir() -> Path:
    """Where on-the-fly ONNX exports (classifiers, RetinaFace) are cached: ``onnx`` under
    :func:`eacfer.utils.cache.cache_root`.

    Example:
        >>> cache_dir().name
        'onnx'
    """
    from eacfer.utils.cache import cache_dir as named_cache

    return named_cache("onnx")


def torch_version() -> str:
    """torch's version (``2.14.1``, no local tag) from its installed metadata, without importing torch (a
    cache hit must not cost torch's import); ``"none"`` where torch is not installed.

    Example:
        >>> torch_version() != ""
        True
    """
    import importlib.metadata

    try:
        return importlib.metadata.version("torch").split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        return "none"


def content_key(path: str | os.PathLike[str], variant: str) -> str:
    """``<SHA-256 of the file, 24 hex>-t<torch version>-<variant>``: what a cache entry is looked up by.

    Example:
        >>> content_key("model.pt", "cams")  # doctest: +SKIP
        '3f2a…-t2.14.1-cams'
    """
    return f"{file_sha256(Path(path))[:24]}-t{torch_version()}-{variant}"


def max_bytes() -> int:
    """The cache's size cap in bytes (``$EACFER_CACHE_MAX_MB``, default 2048 MB; 0 = keep only the newest)."""
    raw = os.environ.get("EACFER_CACHE_MAX_MB", "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_MAX_MB
    except ValueError:
        log.warning("EACFER_CACHE_MAX_MB=%r is not a number; using %d", raw, DEFAULT_MAX_MB)
        mb = DEFAULT_MAX_MB
    return max(0, int(mb * 1e6))


def source_id(path: str | os.PathLike[str]) -> str:
    """Short hash of a model file's absolute path (names which file an entry was made for)."""
    return hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:12]


def _entries(root: Path) -> list[Path]:
    try:
        return [p for p in root.iterdir() if p.is_file() and p.name.endswith(SUFFIXES)]
    except OSError:
        return []


def lookup(root: Path, content_key: str, suffix: str = ".onnx") -> Path | None:
    """A cached entry for ``content_key`` (made for any path), touched as just used; ``None`` when absent.

    Example:
        >>> lookup(cache_dir(), "0123abcd-t2.14.1-cams")  # doctest: +SKIP
    """
    # ``<content>.onnx``: an entry written by eacfer 0.1 (before the ``--<source>`` part); still valid
    for p in [*sorted(root.glob(f"{content_key}--*{suffix}")), root / f"{content_key}{suffix}"]:
        try:
            if p.is_file() and p.stat().st_size > 0:
                os.utime(p)  # least-recently-used bookkeeping (atime is unreliable: noatime/relatime)
                return p
        except OSError:
            continue
    return None


def store(root: Path, content_key: str, source: str | os.PathLike[str], data: bytes,
          suffix: str = ".onnx", limit: int | None = None) -> Path:
    """Write an entry atomically, drop older entries of the same source and variant, enforce the size cap.

    Raises ``OSError`` when the cache cannot be written (callers then keep the data in memory).

    Example:
        >>> store(cache_dir(), "0123abcd-t2.14.1-cams", "model.pt", b"...")  # doctest: +SKIP
    """
    from eacfer.utils.atomic import atomic_path

    sid = source_id(source)
    path = root / f"{content_key}--{sid}{suffix}"
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    variant = _variant(content_key)
    for p in _entries(root):
        key, _, rest = p.name.partition("--")
        if p != path and rest == f"{sid}{suffix}" and _variant(key) == variant:
            _remove(p, "replaced by a newer export of the same model file")
    evict(root, max_bytes() if limit is None else limit, keep=path)
    return path


def _variant(content_key: str) -> str:
    """``<sha>-t<torch>-<variant>`` → ``<variant>`` (e.g. ``cams``, ``cams-int8``)."""
    parts = content_key.split("-", 2)
    return parts[2] if len(parts) == 3 else content_key


def _remove(p: Path, why: str) -> None:
    try:
        p.unlink()
        log.debug("ONNX cache: removed %s (%s)", p.name, why)
    except OSError:
        pass


def evict(root: Path, limit: int, keep: Path | None = None) -> list[Path]:
    """Delete least recently used entries until the cache holds at most ``limit`` bytes; return the deleted.

    Example:
        >>> evict(cache_dir(), 500_000_000)  # doctest: +SKIP
        []
    """
    stats: list[tuple[float, int, Path]] = []
    for p in _entries(root):
        try:
            st = p.stat()
        except OSError:
            continue
        stats.append((st.st_mtime, st.st_size, p))
    total = sum(s for _, s, _ in stats)
    removed: list[Path] = []
    for _, size, p in sorted(stats, key=lambda t: (t[0], t[2].name)):
        if total <= limit:
            break
        if keep is not None and p == keep:
            continue
        _remove(p, "cache over its size cap, least recently used")
        removed.append(p)
        total -= size
    return removed


def read_refusal(root: Path, content_key: str) -> dict[str, Any] | None:
    """The recorded refusal of an int8 quantisation for this content, if any."""
    p = lookup(root, content_key, ".refused.json")
    if p is None:
        return None
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None
