"""Detector-independent types: :class:`Detection`, the :class:`FaceDetector` protocol, input checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

#: Names of the six BlazeFace keypoints, in MediaPipe order. "right" is the subject's right, which is the
#: image-left side for a frontal face.
KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)


@dataclass
class Detection:
    """One detected face.

    ``box`` is ``(x, y, w, h)`` in pixels of the input image, clipped to it; ``keypoints`` is a K×2 float
    array of pixel coordinates in :data:`KEYPOINT_NAMES` order, or ``None`` when the detector gives none.

    Example:
        >>> d = Detection((10.0, 20.0, 50.0, 60.0), 0.9)
        >>> d.box[2] * d.box[3]
        3000.0
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None = field(default=None)


@runtime_checkable
class FaceDetector(Protocol):
    """What every detector offers. Instances are *not* thread-safe: use one from one thread at a time
    (the UI runs detection off the main thread, one worker per detector)."""

    name: str

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in an H×W×3 uint8 RGB image, sorted by score (highest first)."""
        ...

    def close(self) -> None:
        """Release native resources; the detector must not be used afterwards."""
        ...


def check_rgb_image(image: object) -> np.ndarray:
    """Return ``image`` as a C-contiguous H×W×3 uint8 array or raise a one-line ``ValueError``.

    Example:
        >>> check_rgb_image(np.zeros((4, 5, 3), np.uint8)).shape
        (4, 5, 3)
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"detector input must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"detector input must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"detector input must be H×W×3 RGB, got shape {tuple(image.shape)} "
            "(convert grayscale/RGBA to RGB first, e.g. with eacfer.data.imageio.load_image)"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"detector input is empty: shape {tuple(image.shape)}")
    return np.ascontiguousarray(image)


def clip_box(
    x: float, y: float, w: float, h: float, width: int, height: int
) -> tuple[float, float, float, float]:
    """Clip an ``(x, y, w, h)`` box to a ``width``×``height`` image.

    Example:
        >>> clip_box(-5, 0, 20, 10, 100, 100)
        (0.0, 0.0, 15.0, 10.0)
    """
    x0, y0 = max(0.0, float(x)), max(0.0, float(y))
    x1, y1 = min(float(width), float(x + w)), min(float(height), float(y + h))
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


def finalize(dets: list[Detection], min_face: int) -> list[Detection]:
    """Drop boxes smaller than ``min_face`` pixels (shorter side) or empty, and sort by score desc."""
    kept = [d for d in dets if d.box[2] > 0 and d.box[3] > 0 and min(d.box[2], d.box[3]) >= min_face]
    kept.sort(key=lambda d: d.score, reverse=True)
    return kept
