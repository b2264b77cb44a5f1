"""The predictor's detection stage for frame pipelines (:class:`eacfer.infer.protocols.FrameDetector`).

It belongs to the face analyser (``Predictor.frame_detector`` builds it, calling back the analyser's detectors),
not to the pipeline, which sees only the :class:`~eacfer.infer.protocols.FrameDetector` seam; so the pipeline
no longer imports the predictor's side and the predictor no longer imports the pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eacfer.infer.protocols import FaceAnalyser

__all__ = ["DetectionStage"]


class DetectionStage:
    """The detection stage of a video pipeline: the predictor's detector for ``kind`` on every analysed frame.

    For video files and cameras in auto mode that detector is the tracking
    :class:`~eacfer.infer.detect.finder.VideoFaceFinder` (short-range BlazeFace around each face, full scans
    on a schedule), which keeps tracks across frames: ``reset`` forgets them (a new source, a seek).

    Example:
        >>> det = predictor.frame_detector("video"); dets = det.detect(rgb, 0)  # doctest: +SKIP
    """

    def __init__(self, predictor: FaceAnalyser, kind: str):
        self.predictor, self.kind = predictor, kind

    def detect(self, rgb: np.ndarray, index: int) -> list[Any]:
        return self.predictor.detect_faces(rgb, self.kind)

    def reset(self) -> None:
        self.predictor.reset_tracking(self.kind)

    def settings(self) -> dict[str, Any]:
        tracking = self.predictor.detector_mode_for(self.kind) == "finder"
        return {**self.predictor.detector_settings(self.kind),
                "strategy": "tracking finder: short-range around faces, full scans on a schedule" if tracking
                else "full scan of every analysed frame"}

    def close(self) -> None:
        """The detector belongs to the predictor (closed with it)."""
