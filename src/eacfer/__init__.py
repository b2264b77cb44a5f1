"""eacfer: facial emotion recognition with Erasing Attention Consistency (EAC, ECCV 2022).

The public API is imported lazily so that ``import eacfer`` stays cheap (no torch/cv2 until used).

Example:
    >>> import eacfer
    >>> model = eacfer.create_model("mobilenet_v2")          # doctest: +SKIP
    >>> logits, cams = model.forward_with_cams(images)       # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "create_model": "eacfer.models.factory",
    "list_backbones": "eacfer.models.registry",
    "EACNet": "eacfer.models.eac",
    "eac_loss": "eacfer.models.loss",
    "flip_cams": "eacfer.models.loss",
    "load_model": "eacfer.checkpoint",
    "save_model": "eacfer.checkpoint",
    "RAFDB_CLASSES": "eacfer.constants",
    "Predictor": "eacfer.infer.predictor",
    "train": "eacfer.training.trainer",
    "evaluate_checkpoint": "eacfer.training.evaluation",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'eacfer' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)


def __dir__() -> list[str]:
    return __all__
