"""Data layer: label files, robust image decoding, dataset formats, decoded-image cache, synthetic data.

Names are imported lazily so that ``import eacfer.data`` does not pull in torch or OpenCV.

Example:
    >>> from eacfer.data import load_split, FERDataset   # doctest: +SKIP
    >>> ds = FERDataset(load_split("data/RAF-DB", "test"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_LAZY = {
    "LabelEntry": "labels",
    "LabelFile": "labels",
    "parse_label_file": "labels",
    "write_label_file": "labels",
    "inject_symmetric_noise": "labels",
    "ImageLoadError": "imageio",
    "load_image": "imageio",
    "decode_image_bytes": "imageio",
    "image_size": "imageio",
    "list_images": "imageio",
    "IMAGE_EXTENSIONS": "imageio",
    "FORMATS": "formats",
    "FER2013_CLASSES": "formats",
    "Sample": "formats",
    "SplitData": "formats",
    "detect_format": "formats",
    "load_split": "formats",
    "folder_class_names": "formats",
    "FERDataset": "datasets",
    "generate_rafdb": "synth",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'eacfer.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


def __dir__() -> list[str]:
    return __all__
