"""The one place that says where eacfer keeps its caches.

Root: ``$EACFER_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/eacfer``, else ``~/.cache/eacfer``. Each cache is a
folder under it: ``onnx`` (classifier and RetinaFace exports, size-capped: :mod:`eacfer.infer.onnx_cache`),
``affectnet`` (face crops: :mod:`eacfer.data.facecrops`) and ``decoded`` (decoded training stacks:
:mod:`eacfer.training.fast.cache`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root", "cache_dir"]


def cache_root() -> Path:
    """eacfer's cache folder: ``$EACFER_CACHE_DIR``, else ``$XDG_CACHE_HOME/eacfer``, else ``~/.cache/eacfer``.

    Read from the environment at each call (tests and users may change it while a process runs).

    Example:
        >>> cache_root()  # doctest: +SKIP
        PosixPath('/home/me/.cache/eacfer')
    """
    own = os.environ.get("EACFER_CACHE_DIR")
    if own:
        return Path(own)
    xdg = os.environ.get("XDG_CACHE_HOME")
    # the XDG base directory spec: a relative $XDG_CACHE_HOME is invalid and must be ignored
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "eacfer"


def cache_dir(name: str) -> Path:
    """The folder of one cache under :func:`cache_root` (not created here: writers create it when they write).

    Example:
        >>> cache_dir("onnx").name
        'onnx'
    """
    if not name or os.sep in name or name in (".", ".."):
        raise ValueError(f"cache name must be one plain folder name, got {name!r}")
    return cache_root() / name
