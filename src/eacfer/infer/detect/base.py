"""Detector-independent types: :class:`Detection`, the :class:`FaceDetector` protocol, input checks."""

from __future__ import annotations

from collections.abc import Sequence
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
    array of pixel coordinates, or ``None`` when the detector gives none: BlazeFace gives the six points of
    :data:`KEYPOINT_NAMES`, RetinaFace five (eyes, nose, mouth corners; image-left first), so the eyes are
    always rows 0 and 1 and the nose row 2. ``full_box`` is the detector's box before clipping (it reaches
    outside the image for a face cut by an edge; alignment frames the crop with it), ``None`` when the
    detector gives only clipped boxes. ``track_id`` is set by tracking detectors
    (:class:`eacfer.infer.detect.finder.VideoFaceFinder`), ``None`` otherwise.

    Example:
        >>> d = Detection((10.0, 20.0, 50.0, 60.0), 0.9)
        >>> d.box[2] * d.box[3]
        3000.0
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None = field(default=None)
    full_box: tuple[float, float, float, float] | None = None
    track_id: int | None = None

    @property
    def cut_by_edge(self) -> bool:
        """True when the face reaches outside the image (its ``full_box`` is larger than the clipped ``box``).

        Example:
            >>> Detection((0.0, 0.0, 5.0, 5.0), 0.9, full_box=(-3.0, 0.0, 8.0, 5.0)).cut_by_edge
            True
        """
        if self.full_box is None:
            return False
        return any(abs(a - b) > 0.5 for a, b in zip(self.box, self.full_box, strict=True))


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


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``(x, y, w, h)`` boxes: the one IoU of the package (face finder, tracker, wild evaluation).

    Example:
        >>> box_iou((0, 0, 10, 10), (5, 0, 10, 10))
        0.3333333333333333
    """
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def make_detection(
    x: float, y: float, w: float, h: float, score: float, kps: np.ndarray | None, width: int, height: int
) -> Detection:
    """A :class:`Detection` whose ``box`` is clipped to the image and ``full_box`` keeps the raw box.

    Example:
        >>> d = make_detection(-5, 0, 20, 10, 0.9, None, 100, 100)
        >>> d.box, d.full_box
        ((0.0, 0.0, 15.0, 10.0), (-5.0, 0.0, 20.0, 10.0))
    """
    full = (float(x), float(y), float(w), float(h))
    return Detection(clip_box(x, y, w, h, width, height), float(score), kps, full_box=full)


def shift_detection(det: Detection, dx: float, dy: float, width: int, height: int) -> Detection:
    """A detection found in a region of an image (a crop at ``(dx, dy)``), moved into the image's coordinates
    and clipped to its ``width``×``height``; ``full_box`` keeps the unclipped box.

    Example:
        >>> shift_detection(Detection((5.0, 5.0, 10.0, 10.0), 0.9), 95, 0, 100, 100).box
        (100.0, 5.0, 0.0, 10.0)
    """
    fb = det.full_box if det.full_box is not None else det.box
    full = (fb[0] + dx, fb[1] + dy, fb[2], fb[3])
    kps = None if det.keypoints is None else (np.asarray(det.keypoints, np.float32) + np.array([dx, dy], np.float32))
    return Detection(clip_box(*full, width, height), det.score, kps, full_box=full)


def finalize(dets: list[Detection], min_face: int) -> list[Detection]:
    """Drop boxes smaller than ``min_face`` pixels (shorter side) or empty, and sort by score desc."""
    kept = [d for d in dets if d.box[2] > 0 and d.box[3] > 0 and min(d.box[2], d.box[3]) >= min_face]
    kept.sort(key=lambda d: d.score, reverse=True)
    return kept


class WholeImage:
    """The ``none`` detector: the whole image is one face (for images that already are aligned faces).

    Example:
        >>> WholeImage().detect(np.zeros((4, 6, 3), np.uint8))[0].box
        (0.0, 0.0, 6.0, 4.0)
    """

    name = "none"

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """One detection covering the image, score 1."""
        img = check_rgb_image(image_rgb)
        return [Detection((0.0, 0.0, float(img.shape[1]), float(img.shape[0])), 1.0, None)]

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> WholeImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
