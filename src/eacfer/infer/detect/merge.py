"""Several detectors on one image, their faces merged: the photo default runs both BlazeFace models.

Full-range BlazeFace (192 px input) finds small faces in groups but misses a close-up that fills or leaves
the frame; short-range (128 px) finds close-ups but no small faces. :class:`MergedDetector` runs each
detector and merges their faces with non-maximum suppression: a face overlapping an already kept one by IoU
> ``iou_threshold``, or lying mostly (80 %) inside it or around it, is the same face. Detectors are taken in
priority order (full-range first), so a face both models find keeps the full-range detection: its box,
keypoints and score. Why not the better score: the two models' scores are not on one scale (short-range
scores the NASA portrait 0.96, full-range 0.92), and measured here the full-range keypoints are the better
ones (on the portrait rotated by 20°, full-range's eye line reads 20 ± 3°, short-range's 10°; alignment
levels the eyes with them). Within one detector, faces are taken best score first.

Cost: the sum of the detectors (≈ 2 + 8 ms on a 640×360 frame here; see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eacfer.infer.detect.base import Detection, FaceDetector, box_iou, finalize


def _inside(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Share of box ``a``'s area that lies inside box ``b``."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0 or a[2] * a[3] <= 0:
        return 0.0
    return float(iw * ih / (a[2] * a[3]))


def merge_detections(
    groups: Sequence[Sequence[Detection]], iou_threshold: float = 0.3, inside: float = 0.8
) -> list[Detection]:
    """Non-maximum suppression across detectors (``groups`` in priority order): one :class:`Detection` per
    face, from the first detector that found it; sorted by score.

    Example:
        >>> a = Detection((0, 0, 10, 10), 0.9)
        >>> b = Detection((1, 0, 10, 10), 0.7)
        >>> [d.score for d in merge_detections([[b], [a, Detection((50, 50, 10, 10), 0.8)]])]
        [0.8, 0.7]
    """
    kept: list[Detection] = []
    for group in groups:
        new = []
        for d in sorted(group, key=lambda d: d.score, reverse=True):
            same = any(
                box_iou(d.box, k.box) > iou_threshold or _inside(d.box, k.box) > inside
                or _inside(k.box, d.box) > inside
                for k in kept
            )
            if not same:
                new.append(d)
        kept.extend(new)
    kept.sort(key=lambda d: d.score, reverse=True)
    return kept


class MergedDetector:
    """Runs every detector of ``detectors`` on the image and merges their faces (see module docstring).

    Owns the detectors: :meth:`close` closes them all.

    Example:
        >>> from eacfer.infer.detect import create_detector  # doctest: +SKIP
        >>> with create_detector("mediapipe-both") as det:  # doctest: +SKIP
        ...     faces = det.detect(rgb_photo)
    """

    def __init__(
        self, detectors: Sequence[FaceDetector], name: str = "merged", iou_threshold: float = 0.3,
        min_face: int = 0,
    ) -> None:
        if not detectors:
            raise ValueError("MergedDetector needs at least one detector")
        self.detectors = list(detectors)
        self.name = name
        self.iou_threshold = float(iou_threshold)
        self.min_face = int(min_face)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces found by any of the detectors, merged; sorted by score."""
        return finalize(merge_detections([d.detect(image_rgb) for d in self.detectors], self.iou_threshold),
                        self.min_face)

    def close(self) -> None:
        """Close every detector."""
        for d in self.detectors:
            d.close()

    def __enter__(self) -> MergedDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
