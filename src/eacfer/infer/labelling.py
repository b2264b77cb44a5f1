"""How a face's class probabilities become its label: flip test-time augmentation, ``uncertain`` below a
confidence threshold, and which of these options a job records (issue #28).

The predictor, the worker pool and serve all label through :class:`eacfer.infer.predictor.Predictor`, whose
``probabilities`` and ``label`` call these functions — one rule, one place.

Example:
    >>> import numpy as np
    >>> top_label(np.array([0.2, 0.5, 0.3], np.float32), ("a", "b", "c"), min_confidence=0.6)
    (1, 'uncertain')
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

#: the label of a face whose top probability is below ``min_confidence`` (its probabilities are still reported)
UNCERTAIN = "uncertain"
#: test-time augmentations: ``flip`` averages the probabilities of a face crop and its mirror image
TTA_MODES = ("none", "flip")


class _Classifies(Protocol):
    def classify(self, crops: np.ndarray, cams: bool = False) -> tuple[np.ndarray, np.ndarray | None]: ...


def tta_probabilities(classifier: _Classifies, crops: np.ndarray, cam: bool = False,
                      tta: str = "none") -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities (and CAMs) of a batch of N×S×S×3 model-input crops. ``tta="flip"`` averages the
    probabilities of each crop and of its mirror image (EAC trains a model to attend alike to both); the CAMs
    are the unflipped crop's.

    Example:
        >>> class Mirror:  # a toy classifier that tells a crop from its mirror image
        ...     def classify(self, crops, cams=False):
        ...         left = float(crops[0, 0, 0, 0] > crops[0, 0, -1, 0])
        ...         return np.array([[left, 1 - left]], np.float32), None
        >>> crops = np.zeros((1, 2, 2, 3), np.uint8); crops[0, :, 0] = 255
        >>> tta_probabilities(Mirror(), crops)[0].tolist(), tta_probabilities(Mirror(), crops, tta="flip")[0].tolist()
        ([[1.0, 0.0]], [[0.5, 0.5]])
    """
    if tta not in TTA_MODES:
        raise ValueError(f"unknown --tta {tta!r}; choose from {', '.join(TTA_MODES)}")
    probs, cams = classifier.classify(np.ascontiguousarray(crops), cams=cam)
    if tta == "flip":
        mirrored, _ = classifier.classify(np.ascontiguousarray(crops[:, :, ::-1]), cams=False)
        probs = ((probs + mirrored) / 2).astype(np.float32)
    return probs, cams


def top_label(probs: np.ndarray, class_names: tuple[str, ...] | list[str],
              min_confidence: float = 0.0) -> tuple[int, str]:
    """``(top class index, label)`` of one face: the class name, or :data:`UNCERTAIN` when the top probability is
    below ``min_confidence`` (0: never).

    Example:
        >>> top_label(np.array([0.4, 0.35, 0.25]), ("a", "b", "c"), 0.5), top_label(np.array([0.5, 0.5]), ("a", "b"), 0.5)
        ((0, 'uncertain'), (0, 'a'))
    """
    k = int(np.argmax(probs))
    return k, (UNCERTAIN if float(probs[k]) < min_confidence else class_names[k])


class _LabelSettings(Protocol):
    """The labelling settings of an analyser (:class:`eacfer.infer.protocols.FaceAnalyser` has them); declared
    here so that labelling, which the face recipe uses, does not depend on the analyser's whole seam."""

    min_confidence: float
    tta: str
    align: str


def labelling_options(predictor: _LabelSettings) -> dict[str, Any]:
    """``min_confidence``, ``tta`` and ``align`` of a predictor, only those set (so default runs record what they
    always did).

    Example:
        >>> from types import SimpleNamespace
        >>> labelling_options(SimpleNamespace(min_confidence=0.5, tta="none", align="box"))
        {'min_confidence': 0.5}
    """
    out: dict[str, Any] = {}
    if getattr(predictor, "min_confidence", 0.0) > 0:
        out["min_confidence"] = float(predictor.min_confidence)
    if getattr(predictor, "tta", "none") != "none":
        out["tta"] = str(predictor.tta)
    if getattr(predictor, "align", "box") != "box":
        out["align"] = str(predictor.align)
    return out
