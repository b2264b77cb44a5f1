"""Decoded-image cache: every training image decoded once into one N×H×W×3 uint8 array.

In memory, or as a memory-mapped ``.npy`` file in a cache folder, named by a key over the dataset's
content: the image file names, sizes and modification times (or, with ``hash_files=True``, the bytes
themselves), plus anything else that changes the decoded pixels (e.g. the stack size). A changed,
added or removed image gives a new key, so a stale cache is never used.

RAF-DB: 12,271 aligned 100×100 training images → 368 MB of uint8, small enough to live on the GPU.
AffectNet at 224×224 (~280k faces) → ~42 GB: written to the cache file image by image (``build`` fills the
memory-mapped file it is handed), never held in RAM as a whole.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from eacfer.utils.atomic import atomic_path

log = logging.getLogger(__name__)

KEY_VERSION = "eacfer-decoded-v1"


def content_key(
    paths: Sequence[str | os.PathLike[str]], *, extra: str = "", hash_files: bool = False
) -> str:
    """A hex key over the files' names + sizes + mtimes (or their bytes) and ``extra``.

    Example:
        >>> content_key([], extra="size=100")[:8]  # doctest: +SKIP
        '3f1c...'
    """
    h = hashlib.sha256()
    h.update(f"{KEY_VERSION}|{extra}|{len(paths)}\n".encode())
    for p in paths:
        p = Path(p)
        try:
            st = p.stat()
        except OSError as e:
            raise FileNotFoundError(f"{p}: cannot read image file for the decoded cache ({e.strerror})") from None
        h.update(f"{p.name}|{st.st_size}".encode())
        if hash_files:
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        else:
            h.update(f"|{st.st_mtime_ns}".encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


Allocate = Callable[[tuple[int, ...]], np.ndarray]


def memory_budget(share: float = 0.5) -> int | None:
    """``share`` of the host memory available now (``MemAvailable``), in bytes; ``None`` when unknown.

    Example:
        >>> b = memory_budget(); b is None or b > 0
        True
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(share * int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(share * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def default_cache_dir() -> Path:
    """Where decoded stacks go when none is named: ``decoded`` under :func:`eacfer.utils.cache.cache_root`.

    Example:
        >>> default_cache_dir().name
        'decoded'
    """
    from eacfer.utils.cache import cache_dir

    return cache_dir("decoded")


def _check_stack(arr: np.ndarray, source: str) -> np.ndarray:
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"{source}: expected an N×H×W×3 uint8 image stack, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def cache_file(cache_dir: str | os.PathLike[str], key: str, prefix: str = "decoded") -> Path:
    """Where the memory-mapped stack for ``key`` lives."""
    return Path(cache_dir) / f"{prefix}-{key}.npy"


def load_or_build(
    build: Callable[[Allocate], np.ndarray],
    *,
    key: str,
    cache_dir: str | os.PathLike[str] | None = None,
    expected_len: int | None = None,
    prefix: str = "decoded",
) -> np.ndarray:
    """Return the decoded stack: memory-mapped from ``cache_dir`` when cached, else built (and saved).

    ``build(allocate)`` decodes the images (e.g. ``FERDataset.uint8_stack(out=allocate)``): ``allocate(shape)``
    gives the array to fill — with ``cache_dir``, the memory-mapped cache file itself, so the decoded set is
    streamed to disk and never held in RAM as a whole. A ``build`` may also ignore it and return its own
    array. Without ``cache_dir`` the stack only lives in memory. A cached file with the wrong shape is
    rebuilt, never trusted.

    Example:
        >>> imgs = load_or_build(lambda alloc: ds.uint8_stack(out=alloc), key=content_key(ds.paths),  # doctest: +SKIP
        ...                      cache_dir="~/.cache/eacfer")
    """
    if cache_dir is None:
        return _check_stack(np.ascontiguousarray(build(lambda shape: np.empty(shape, np.uint8))), "decoded images")
    path = cache_file(Path(cache_dir).expanduser(), key, prefix)
    if path.exists():
        try:
            arr = _check_stack(np.load(path, mmap_mode="r"), str(path))
            if expected_len is None or arr.shape[0] == expected_len:
                log.info("decoded-image cache hit: %s (%d images)", path, arr.shape[0])
                return arr
            log.warning("%s: holds %d images, expected %d; rebuilding", path, arr.shape[0], expected_len)
        except (ValueError, OSError) as e:
            log.warning("%s: unreadable decoded cache (%s); rebuilding", path, e)
    with atomic_path(path, suffix=".npy.tmp") as tmp:
        mapped: list[np.ndarray] = []

        def allocate(shape: tuple[int, ...]) -> np.ndarray:
            mapped[:] = [np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=tuple(shape))]
            return mapped[0]

        arr = _check_stack(build(allocate), "decoded images")
        if expected_len is not None and arr.shape[0] != expected_len:
            raise ValueError(f"decoded {arr.shape[0]} images, expected {expected_len}")
        nbytes = arr.nbytes
        if mapped and arr is mapped[0]:
            arr.flush()  # filled in place: the file is complete
        else:  # the build made its own array
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(arr))
        del arr, mapped[:]  # closes the writable map before the file is renamed
    log.info("decoded-image cache written: %s (%.1f MB)", path, nbytes / 1e6)
    return np.load(path, mmap_mode="r")
