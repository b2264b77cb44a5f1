"""A minimal tracking detection stage for videos: full scans every few frames, short-range BlazeFace around
known faces in between (opt-in: ``Predictor(video_detection="roi")``; ``eacfer video --detection roi``).

Why: the full-range detector is the largest stage of the video pipeline on a CPU (≈10 ms a 640×360 frame
vs ≈2.6 ms for short-range, which however misses small faces in a whole frame). Cropped to a square twice
the size of a known face, every face is large in the crop, which is short-range's regime.

* A **full scan** (the predictor's own detector, full-range for files) runs on the first frame, every
  ``full_every`` analysed frames (so a face entering is found within ``full_every`` frames), and whenever a
  known face was not found again in its region (the scan then happens on that same frame).
* Between scans each known face is searched in its region; boxes and keypoints are mapped back to frame
  pixels; two regions finding the same face keep one box.

The issue-#16 video face finder (``infer/detect``, ``infer/tracking.py``) supersedes this stage when it
lands; both plug in through :meth:`eacfer.infer.predictor.Predictor.frame_detector`.

Example:
    >>> det = RoiDetector(predictor, "image", full_every=5)  # doctest: +SKIP
    >>> faces = det.detect(rgb, index=0)                      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eacfer.infer.detect.base import Detection

#: region side = ``ROI_SCALE`` × the face box's longer side (the face then spans half the crop)
ROI_SCALE = 2.0


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def roi_for(box: tuple[float, float, float, float], width: int, height: int,
            scale: float = ROI_SCALE) -> tuple[int, int, int, int]:
    """The square region ``(x0, y0, x1, y1)`` around a face box, clipped to the frame.

    Example:
        >>> roi_for((100, 100, 50, 50), 640, 360)
        (75, 75, 175, 175)
    """
    side = max(box[2], box[3]) * scale
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    return x0, y0, min(width, int(cx + side / 2)), min(height, int(cy + side / 2))


class RoiDetector:
    """Full scans every ``full_every`` frames and when a face is lost; short-range in regions in between."""

    def __init__(self, predictor: Any, kind: str, full_every: int = 5, scale: float = ROI_SCALE):
        if full_every < 1:
            raise ValueError(f"full_every must be >= 1, got {full_every}")
        from eacfer.infer.detect import create_detector

        self.predictor, self.kind, self.full_every, self.scale = predictor, kind, int(full_every), float(scale)
        self._short = create_detector("mediapipe", mode="short", score_threshold=predictor.score_threshold)
        self._boxes: list[tuple[float, float, float, float]] = []
        self._since_scan = 0
        self.full_scans = 0
        self.roi_calls = 0

    def reset(self) -> None:
        self._boxes, self._since_scan = [], 0

    def _full(self, rgb: np.ndarray) -> list[Detection]:
        dets = self.predictor.detect_faces(rgb, self.kind)
        self.full_scans += 1
        self._since_scan = 0
        self._boxes = [tuple(map(float, d.box)) for d in dets]  # type: ignore[misc]
        return dets

    def detect(self, rgb: np.ndarray, index: int) -> list[Detection]:
        self._since_scan += 1
        if not self._boxes or self._since_scan >= self.full_every:
            return self._full(rgb)
        h, w = rgb.shape[:2]
        found: list[Detection] = []
        for box in self._boxes:
            x0, y0, x1, y1 = roi_for(box, w, h, self.scale)
            if x1 - x0 < 8 or y1 - y0 < 8:
                return self._full(rgb)
            self.roi_calls += 1
            dets = self._short.detect(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
            if not dets:
                return self._full(rgb)  # lost (left, turned away, occluded): look at the whole frame now
            d = max(dets, key=lambda d: d.score)
            kp = None if d.keypoints is None else np.asarray(d.keypoints, np.float32) + np.float32([x0, y0])
            found.append(Detection((d.box[0] + x0, d.box[1] + y0, d.box[2], d.box[3]), d.score, kp))
        found.sort(key=lambda d: d.score, reverse=True)
        kept: list[Detection] = []
        for d in found:  # two regions that found the same face keep the better box
            if all(_iou(d.box, k.box) < 0.5 for k in kept):
                kept.append(d)
        if self.predictor.max_faces is not None:
            kept = kept[: self.predictor.max_faces]
        self._boxes = [tuple(map(float, d.box)) for d in kept]  # type: ignore[misc]
        return kept

    def settings(self) -> dict[str, Any]:
        return {**self.predictor.detector_settings(self.kind), "strategy": "roi",
                "full_scan_every": self.full_every, "roi": "short-range BlazeFace in a square "
                f"{self.scale:g}× the face around each known face", "full_scans": self.full_scans,
                "roi_calls": self.roi_calls}

    def close(self) -> None:
        self._short.close()
