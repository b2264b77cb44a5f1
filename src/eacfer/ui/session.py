"""The model side of the app, as thin as possible: a loaded :class:`eacfer.infer.predictor.Predictor` plus
an :class:`eacfer.infer.stream.tracking.IoUTracker`, turned into per-frame :class:`Analysis` objects.

All detection, classification, CAMs and smoothing come from the predictor and the tracker; this
module only wires them to frames from the capture thread and records what the side panel shows.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eacfer.infer.protocols import FaceAnalyser
from eacfer.ui.worker import FramePacket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSummary:
    """What the side panel shows about the loaded model."""

    path: str
    backbone: str
    class_names: tuple[str, ...]
    input_size: int
    backend: str  # "torch" | "onnxruntime"
    device: str  # "CPU" | "CUDA"
    detector: str
    precision: str = "fp32"  # "fp32" | "int8"

    def text(self) -> str:
        return (
            f"{os.path.basename(self.path)}\n"
            f"backbone: {self.backbone} · input {self.input_size}×{self.input_size}\n"
            f"classes ({len(self.class_names)}): {', '.join(self.class_names)}\n"
            f"backend: {self.backend} {self.precision} on {self.device} · detector: {self.detector}"
        )


@dataclass
class Analysis:
    """A frame together with everything computed on it (the unit the UI displays)."""

    packet: FramePacket
    faces: list[Any] = field(default_factory=list)  # eacfer.infer.results.FaceResult
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage
    class_names: tuple[str, ...] = ()
    model_path: str = ""
    finished_at: float = field(default_factory=time.monotonic)


def passthrough(packet: FramePacket) -> Analysis:
    """The frame with no faces (no model loaded, or analysis failed)."""
    return Analysis(packet=packet)


def face_probabilities(face: Any, smoothed: bool) -> np.ndarray:
    """The probabilities to show for a face: the tracker's smoothed ones when asked and available."""
    if smoothed and getattr(face, "smoothed", None) is not None:
        return np.asarray(face.smoothed, dtype=float)
    return np.asarray(face.probabilities, dtype=float)


def face_label(face: Any, smoothed: bool) -> tuple[str, float]:
    """``(emotion, confidence)`` of a face, raw or smoothed; a raw face the predictor labelled ``uncertain``
    (``--min-confidence``) keeps that label."""
    from eacfer.infer.labelling import UNCERTAIN

    p = face_probabilities(face, smoothed)
    k = int(np.argmax(p))
    if not smoothed and getattr(face, "emotion", None) == UNCERTAIN:
        return UNCERTAIN, float(p[k])
    return str(face.class_names[k]), float(p[k])


class ModelSession:
    """A loaded model + detector + tracker, used from the inference thread only.

    Example:
        >>> session = ModelSession.load("runs/demo/run/model.pt")          # doctest: +SKIP
        >>> analysis = session.analyze(packet, want_cam=False)          # doctest: +SKIP
    """

    def __init__(self, predictor: FaceAnalyser, path: str, detector: str, classify_every: int | str = 1):
        from eacfer.infer.stream.reuse import LabelReuse, resolve_classify_every

        self.predictor = predictor
        # videos and cameras: each tracked face classified every N-th frame, labels carried over in between;
        # known faces classified in the background (reuse.py), since the app plays everything in real time
        # and drops what it cannot keep up with anyway
        self.classify_every = resolve_classify_every(classify_every, str(predictor.classifier.info.backbone))
        self._reuse = LabelReuse(self.classify_every, background=True)
        self.path = str(path)
        self.detector = detector
        self._tracker = self._new_tracker()
        self.summary = self._summarize()

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "auto", detector: str = "mediapipe",
             backend: str | None = None, precision: str = "fp32", classify_every: int | str = 1,
             min_confidence: float = 0.0) -> ModelSession:
        """Load a ``.pt`` or ``.onnx`` model file; raises CheckpointError / ValueError with a clear message."""
        from eacfer.infer.predictor import Predictor

        path = str(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: model file not found")
        predictor = Predictor.from_checkpoint(path, device=device, detector=detector, backend=backend,
                                              precision=precision, min_confidence=min_confidence)
        return cls(predictor, path, detector, classify_every)

    @staticmethod
    def _new_tracker() -> Any:
        from eacfer.infer.stream.tracking import IoUTracker

        return IoUTracker(keep_given_ids=True)  # the finder's ids when it gives them

    @property
    def has_cams(self) -> bool:
        return bool(getattr(self.predictor.classifier, "has_cams", False))

    def _summarize(self) -> ModelSummary:
        clf = self.predictor.classifier
        info = clf.info
        device = str(getattr(clf, "device", "cpu"))
        return ModelSummary(
            path=self.path,
            backbone=str(info.backbone),
            class_names=tuple(info.class_names),
            input_size=int(info.input_size),
            backend=str(clf.backend),
            device="CUDA" if "cuda" in device.lower() else "CPU",
            detector=self.detector,
            precision=str(getattr(clf, "precision", "fp32")),
        )

    def analyze(self, packet: FramePacket, want_cam: bool) -> Analysis:
        """Detect, classify and track the faces of one frame (both stages below, one after the other)."""
        return self.finish(packet, self.detect(packet), want_cam)

    def detect(self, packet: FramePacket) -> tuple[list[Any], float]:
        """First stage (inference thread): the faces of a frame and the detection ms."""
        # the predictor's own policy in auto mode: both BlazeFace models merged for photos, the tracking face
        # finder (short-range around each face, full scans on a schedule) for video files and cameras
        kind = "image" if packet.still else ("stream" if packet.live else "video")
        if packet.reset and kind != "image":
            self.predictor.reset_tracking(kind)  # a seek or a new source is not a continuation
        t0 = time.perf_counter()
        dets = self.predictor.detect_faces(packet.image, kind)
        return dets, (time.perf_counter() - t0) * 1000.0

    def finish(self, packet: FramePacket, found: tuple[list[Any], float], want_cam: bool) -> Analysis:
        """Second stage (classification thread, frames in capture order): classify and track."""
        dets, detect_ms = found
        if packet.reset or packet.still:
            self._tracker = self._new_tracker()  # a new photo / a seek is not a continuation
            self._reuse.reset()
        timings = {"detect": detect_ms}
        cam = want_cam and self.has_cams
        if packet.still:
            faces = self.predictor.classify_faces(packet.image, dets, cam, timings)
        else:
            faces = self._reuse.classify(self.predictor, packet.image, dets, cam, timings, packet.index)
            faces = self._tracker.update(faces, packet.index)
        return Analysis(
            packet=packet,
            faces=faces,
            timings=timings,
            class_names=self.summary.class_names,
            model_path=self.path,
        )

    def close(self) -> None:
        self._reuse.close()  # a background classification still running uses the predictor
        self.predictor.close()
