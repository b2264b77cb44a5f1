"""The seams of the inference package, typed: what the stream, job and app code needs of a face analyser.

:class:`~eacfer.infer.predictor.Predictor` is the one implementation in the package; tests pass small stand-ins
with only the members a function uses. The frame pipeline (:mod:`eacfer.infer.stream.pipeline`), label carry-over
(:mod:`eacfer.infer.stream.reuse`), photo and video jobs (:mod:`eacfer.infer.jobs.photos`, :mod:`eacfer.infer.jobs.videos`),
:func:`eacfer.infer.jobs.video.run_video` and the desktop app take a :class:`FaceAnalyser`, so ``mypy`` checks every
call they make on it against one declaration. This module imports only :mod:`eacfer.infer.results`: any module
may depend on it without a cycle.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from eacfer.infer.results import FaceResult, FrameResult

if TYPE_CHECKING:  # types only: importing them at run time would tie this seam to their modules' imports
    from eacfer.infer.detect.policy import DetectorPolicy
    from eacfer.infer.recipe import FaceRecipe

__all__ = ["FaceAnalyser", "FrameDetector"]


@runtime_checkable
class FrameDetector(Protocol):
    """The detection stage of a frame pipeline: one call per analysed frame, in frame order, from one thread.

    Implementations may keep state across frames (tracks, regions of interest); ``reset`` forgets it
    (a seek, a new source). :meth:`FaceAnalyser.frame_detector` gives the analyser's own.

    Example:
        >>> det = predictor.frame_detector("video"); dets = det.detect(rgb, 0)  # doctest: +SKIP
    """

    def detect(self, rgb: np.ndarray, index: int) -> list[Any]:
        """Faces (:class:`eacfer.infer.detect.Detection`) of frame ``index``, highest score first."""
        ...

    def reset(self) -> None:
        """Forget tracks and regions of interest (a new source, a seek)."""
        ...

    def settings(self) -> dict[str, Any]:
        """JSON-friendly description for summary.json."""
        ...

    # an optional ``close()`` releases what a stage owns; the pipeline calls it on stages it made itself


@runtime_checkable
class FaceAnalyser(Protocol):
    """What the pipeline, the jobs and the app need of a face analyser (detect, frame, classify, describe).

    Example:
        >>> from eacfer.infer.predictor import Predictor
        >>> def classes(a: FaceAnalyser) -> tuple[str, ...]: return a.class_names
        >>> classes(Predictor.from_checkpoint("model.pt"))  # doctest: +SKIP
        ('surprise', 'fear', 'disgust', 'happy', 'sad', 'anger', 'neutral')
    """

    # settings read by the jobs (identities, summaries) and the label rules (labelling.py)
    classifier: Any  # the backend (eacfer.infer.runtime.backends); ``.info`` is the model file's ModelInfo
    detector_name: str
    detector_mode: str
    score_threshold: float
    max_faces: int | None
    min_confidence: float
    tta: str
    align: str
    cam: bool
    detector_policy: DetectorPolicy  # which detector runs on photos, video files and cameras (the workers get it)

    @property
    def recipe(self) -> FaceRecipe: ...

    @property
    def class_names(self) -> tuple[str, ...]: ...

    @property
    def input_size(self) -> int: ...

    @property
    def face_size(self) -> int | None: ...

    @property
    def face_margin(self) -> float: ...

    @property
    def face_shift(self) -> float: ...

    @property
    def backend(self) -> str: ...

    def detect_faces(self, rgb: np.ndarray, kind: str = "image", mode: str | None = None) -> list[Any]:
        """The faces of one image (``kind``: ``image``, ``video`` or ``stream`` picks the detector)."""
        ...

    def frame_detector(self, kind: str = "image") -> FrameDetector:
        """The detection stage of a frame pipeline for ``kind``."""
        ...

    def reset_tracking(self, kind: str) -> None:
        """Forget the video face finder's tracks for ``kind``."""
        ...

    def detector_mode_for(self, kind: str) -> str:
        """The detector mode really used for ``kind``."""
        ...

    def detector_settings(self, kind: str = "image") -> dict[str, Any]:
        """Detector name, mode, threshold and face cap for ``kind`` (summary.json)."""
        ...

    def classify_faces(self, rgb: np.ndarray, dets: list[Any], cam: bool,
                       timings: dict[str, float]) -> list[FaceResult]:
        """Align and classify ``dets`` of one image; adds ``align``/``classify`` ms to ``timings``."""
        ...

    def carry_labels(self, det: Any, earlier: FaceResult, cam: bool, width: int, height: int) -> FaceResult:
        """A face at ``det``'s box with the labels of ``earlier`` (classified on an earlier frame)."""
        ...

    def probabilities(self, crops: np.ndarray, cam: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities (and attention maps) of a batch of model inputs."""
        ...

    def label(self, probs: np.ndarray) -> tuple[int, str]:
        """``(class index, emotion)`` of one face's probabilities (``uncertain`` below ``min_confidence``)."""
        ...

    def predict(self, image: Any, color: str = "rgb", cam: bool | None = None,
                keep_image: bool = True) -> FrameResult:
        """Detect and classify every face of one image."""
        ...

    def frames(self, src: Any, every: int = 1, max_frames: int | None = None, cam: bool | None = None,
               pipeline: str = "threaded", **kw: Any) -> Any:
        """The frame pipeline over an opened source (:mod:`eacfer.infer.stream.pipeline`)."""
        ...

    def model_record(self, model_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The ``"model"`` entry of every result file."""
        ...

    def close(self) -> None:
        """Release the detectors' native resources."""
        ...
