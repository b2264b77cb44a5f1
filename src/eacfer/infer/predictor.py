"""Detect faces, align them like RAF-DB crops and classify them — one image or a stream of frames.

The predictor only computes: it never displays or writes files. ``eacfer predict``, ``eacfer video`` and
the desktop app all use it.

* ``predict(image)`` accepts a path, a numpy array (``color="rgb"`` or ``"bgr"`` says which; grayscale,
  alpha and 16-bit arrays are converted) or a PIL image, and returns a :class:`FrameResult`.
* All faces of a frame go through the classifier in **one batch**.
* ``stream(source)`` yields a :class:`FrameResult` per frame read, with ``image`` set to the RGB frame.
  With ``every=N`` only every N-th frame is analysed; the others are yielded with ``processed=False`` and
  no faces, so a writer can still output every frame. Track ids are not assigned here: the caller owns an
  :class:`eacfer.infer.stream.tracking.IoUTracker` (``eacfer video`` and the UI each keep their own).
* ``detector_mode="auto"`` runs both BlazeFace models on photos, faces merged (close-ups and small faces
  alike), and for videos and cameras a :class:`eacfer.infer.detect.finder.VideoFaceFinder`: short-range
  BlazeFace around each tracked face, full-frame scans on a schedule and when a face may have entered,
  faces carrying the finder's ``track_id``. ``detector_mode="short"``/``"full"``/``"both"`` scans every
  frame with that model instead.
  By default the stages run as a threaded pipeline (:mod:`eacfer.infer.stream.pipeline`): decode, detect and
  classify overlap, frame order is kept, live sources drop frames rather than fall behind;
  ``pipeline="sequential"`` runs them one after another. ``frame_detector`` is the pluggable detection stage.
* ``detector="none"`` treats the whole image as one already-aligned face (e.g. RAF-DB aligned crops).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.infer.detect.policy import DetectorPolicy
from eacfer.infer.labelling import TTA_MODES, UNCERTAIN, labelling_options, top_label, tta_probabilities
from eacfer.infer.recipe import FaceRecipe, face_results
from eacfer.infer.results import FaceResult, FrameResult
from eacfer.infer.rgb import COLORS, _pil_to_rgb, to_rgb_array
from eacfer.infer.runtime.backends import Classifier, load_classifier

log = logging.getLogger(__name__)



__all__ = ["COLORS", "TTA_MODES", "UNCERTAIN", "Predictor", "labelling_options", "to_rgb_array"]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


class Predictor:
    """Face detector + aligned crops + emotion classifier.

    Example:
        >>> p = Predictor.from_checkpoint("runs/demo/model.pt", cam=True)  # doctest: +SKIP
        >>> r = p.predict("group.jpg")                                    # doctest: +SKIP
        >>> [(f.emotion, round(f.probability, 2)) for f in r.faces]       # doctest: +SKIP
        [('Happiness', 0.91), ('Neutral', 0.55)]
    """

    def __init__(
        self,
        classifier: Classifier,
        detector: str = "mediapipe",
        detector_mode: str = "auto",
        score_threshold: float = 0.6,
        cam: bool = False,
        max_faces: int | None = None,
        small_face: float = 48.0,
        photo_fallback: str | None = "retinaface",
        min_confidence: float = 0.0,
        tta: str = "none",
        align: str = "box",
    ):
        if isinstance(classifier, (str, os.PathLike)):
            raise TypeError(f"Predictor({str(classifier)!r}) takes a classifier, not a model file: use "
                            f"Predictor.from_checkpoint({str(classifier)!r})")
        if not 0.0 <= min_confidence <= 1.0:  # also refuses nan
            raise ValueError(f"--min-confidence must be between 0 and 1, got {min_confidence}")
        if tta not in TTA_MODES:
            raise ValueError(f"unknown --tta {tta!r}; choose from {', '.join(TTA_MODES)}")
        # faces whose top probability is below this are labelled UNCERTAIN (0: never)
        self.min_confidence = float(min_confidence)
        self.tta = tta
        from eacfer.infer.align import ALIGN_METHODS

        if align not in ALIGN_METHODS:
            raise ValueError(f"unknown --align {align!r}; choose from {', '.join(ALIGN_METHODS)}")
        self.align = align  # "landmarks": faces framed by eyes and mouth like RAF-DB's crops (infer/align.py)
        self.classifier = classifier
        # which detector runs on photos, videos and cameras, with its settings: one object (detect/policy.py)
        # that the worker processes of `predict --workers` get too
        self.detector_policy = DetectorPolicy(detector, detector_mode, score_threshold, small_face,
                                              photo_fallback, max_faces)
        self.cam = bool(cam)
        if cam and not classifier.has_cams:
            raise ValueError("this model cannot produce attention maps (an .onnx exported without --with-cams)")
        self._detectors: dict[str, Any] = {}
        self.model_path: str | None = None  # set by from_checkpoint; recorded in summaries
        if detector != "none":
            self._detector_for("image")  # fail early on an unknown/missing detector

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str = "auto",
        detector: str = "mediapipe",
        backend: str | None = None,
        detector_mode: str = "auto",
        cam: bool = False,
        score_threshold: float = 0.6,
        threads: int | None = None,
        max_faces: int | None = None,
        precision: str = "fp32",
        small_face: float = 48.0,
        min_confidence: float = 0.0,
        tta: str = "none",
        align: str = "box",
    ) -> Predictor:
        """Open a ``.pt`` or ``.onnx`` model (see :func:`eacfer.infer.runtime.backends.load_classifier`) and a detector.

        ``precision="int8"`` runs a checked int8 model (see ``docs/PRECISION.md``); fp32 is the default.
        ``min_confidence``: faces whose top probability is below it are labelled ``"uncertain"``;
        ``tta="flip"`` averages each face's probabilities with its mirror image's (twice the classifier work);
        ``align="landmarks"`` frames faces by eyes and mouth (:func:`eacfer.infer.align.landmark_transform`).
        """
        clf = load_classifier(path, device=device, backend=backend, threads=threads, precision=precision)
        p = cls(clf, detector=detector, detector_mode=detector_mode, score_threshold=score_threshold,
                cam=cam, max_faces=max_faces, small_face=small_face, min_confidence=min_confidence, tta=tta,
                align=align)
        p.model_path = os.fspath(path)
        return p

    # -- properties ------------------------------------------------------------------------------
    # the detector settings, read from (and, for tests and benchmarks, written to) the policy
    detector_name = property(lambda self: self.detector_policy.name,
                             lambda self, v: self._set_policy(name=v), doc="face detector name")
    detector_mode = property(lambda self: self.detector_policy.mode,
                             lambda self, v: self._set_policy(mode=v), doc="auto, both, short or full")
    score_threshold = property(lambda self: self.detector_policy.score_threshold, doc="detector score threshold")
    small_face = property(lambda self: self.detector_policy.small_face, doc="photos: faces this small are tiled for")
    photo_fallback = property(lambda self: self.detector_policy.photo_fallback, doc="photos: second detector")
    max_faces = property(lambda self: self.detector_policy.max_faces, doc="at most this many faces per image")

    def _set_policy(self, **changes: Any) -> None:
        from dataclasses import replace

        self.detector_policy = replace(self.detector_policy, **changes)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.classifier.info.class_names)

    @property
    def input_size(self) -> int:
        return int(self.classifier.info.input_size)

    @property
    def backend(self) -> str:
        return self.classifier.backend

    @property
    def face_size(self) -> int | None:
        """Side of the face images the model was trained on (RAF-DB: 100), or ``None`` (see :meth:`_crops`)."""
        return self.classifier.info.face_size

    # -- detection -------------------------------------------------------------------------------
    def _detector_for(self, kind: str, mode: str | None = None) -> Any:
        """The detector for photos (``kind="image"``) or streams (``"video"``, ``"stream"``) as the policy
        (:class:`~eacfer.infer.detect.policy.DetectorPolicy`) says, created on first use; ``mode`` (MediaPipe:
        both, short or full) overrides the predictor's mode for this call."""
        key = self.detector_policy.key(kind, mode)
        if key not in self._detectors:
            self._detectors[key] = self.detector_policy.create(kind, mode)
        return self._detectors[key]

    # -- core ------------------------------------------------------------------------------------
    @property
    def face_margin(self) -> float:
        """Margin around the detector's box (fraction of the box, each side): the model file's, else 0.1."""
        return self.recipe.margin

    @property
    def face_shift(self) -> float:
        """Crop centre moved up by this fraction of the box side: the model file's ``face_shift``, else 0."""
        return self.recipe.shift

    @property
    def recipe(self) -> FaceRecipe:
        """How faces become model inputs and results (:mod:`eacfer.infer.recipe`): the model file's face size,
        margin and shift, this predictor's framing (``align``; the whole image with ``detector="none"``)."""
        return FaceRecipe.for_model(self.classifier.info, whole_image=self.detector_name == "none", align=self.align)

    def _crops(self, rgb: np.ndarray, dets: list[Any]) -> np.ndarray:
        """N×input_size×input_size×3 model inputs, made the way the training images were (:meth:`recipe`)."""
        return self.recipe.inputs(rgb, dets)

    def detect_faces(self, rgb: np.ndarray, kind: str = "image", mode: str | None = None) -> list[Any]:
        """Detections of one RGB image (``kind``: ``"image"`` for photos and files, ``"stream"`` for live);
        ``mode`` picks the MediaPipe model(s) for this call (``both``, ``short``, ``full``; default the
        predictor's ``detector_mode``).

        Example:
            >>> dets = predictor.detect_faces(rgb)  # doctest: +SKIP
        """
        if self.detector_name == "none":
            return self.detector_policy.detect(None, rgb)
        if mode is not None and (self.detector_name != "mediapipe" or mode not in ("both", "short", "full")):
            raise ValueError(f"detector mode {mode!r}: only both, short or full, with the mediapipe detector")
        return self.detector_policy.detect(self._detector_for(kind, mode), rgb)

    def frame_detector(self, kind: str = "image") -> Any:
        """The detection stage of a video pipeline (:class:`eacfer.infer.protocols.FrameDetector`).

        ``kind`` is ``"video"`` for files, ``"stream"`` for live sources (see :meth:`detector_mode_for`);
        any object with the same four methods can replace it (``open_frames(..., detector=...)``).
        """
        from eacfer.infer.detection_stage import DetectionStage

        return DetectionStage(self, kind)

    def classify_faces(self, rgb: np.ndarray, dets: list[Any], cam: bool, timings: dict[str, float]) -> list[FaceResult]:
        """Align and classify ``dets`` of one image in one batch; adds ``align``/``classify`` ms to ``timings``."""
        return self.classify_many([(rgb, dets)], cam, timings)[0]

    def classify_many(self, items: list[tuple[np.ndarray, list[Any]]], cam: bool,
                      timings: dict[str, float]) -> list[list[FaceResult]]:
        """Align and classify the faces of several images in **one** classifier run (``eacfer serve`` batches
        concurrent requests this way); one list of faces per ``(rgb, dets)`` item, in order.

        Example:
            >>> a, b = predictor.classify_many([(rgb1, dets1), (rgb2, dets2)], False, {})  # doctest: +SKIP
        """
        if not any(dets for _, dets in items):
            timings["align"] = timings["classify"] = 0.0
            return [[] for _ in items]
        recipe = self.recipe
        t0 = time.perf_counter()
        crops = np.concatenate([recipe.inputs(rgb, dets) for rgb, dets in items if dets])
        timings["align"] = _ms(t0)
        t0 = time.perf_counter()
        probs, cams = self.probabilities(crops, cam)
        timings["classify"] = _ms(t0)
        out: list[list[FaceResult]] = []
        at = 0
        for rgb, dets in items:
            n = len(dets)
            out.append(face_results(dets, probs[at:at + n], None if cams is None else cams[at:at + n], recipe,
                                    self.class_names, self.min_confidence, (int(rgb.shape[1]), int(rgb.shape[0]))))
            at += n
        return out

    def probabilities(self, crops: np.ndarray, cam: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (and CAMs) of model-input crops, with this predictor's ``tta`` (see
        :func:`eacfer.infer.labelling.tta_probabilities`)."""
        return tta_probabilities(self.classifier, crops, cam, self.tta)

    def label(self, probs: np.ndarray) -> tuple[int, str]:
        """``(top class index, label)`` of one face, ``uncertain`` below ``min_confidence`` (see
        :func:`eacfer.infer.labelling.top_label`)."""
        return top_label(probs, self.class_names, self.min_confidence)

    def _crop_affine(self, det: Any, width: int, height: int) -> np.ndarray:
        """Image pixels → crop pixels for ``det`` (maps the CAM back onto the image)."""
        return self.recipe.crop_affine(det, width, height)

    def carry_labels(self, det: Any, earlier: FaceResult, cam: bool, width: int, height: int) -> FaceResult:
        """``det`` (this frame's box of a tracked face) with the labels and CAM of an ``earlier`` classification
        of the same track: what :class:`eacfer.infer.stream.reuse.LabelReuse` returns between classifications.

        Example:
            >>> face = predictor.carry_labels(det, last_face, cam=False, width=640, height=360)  # doctest: +SKIP
        """
        return FaceResult(
            box=tuple(float(v) for v in det.box), score=float(det.score),  # type: ignore[arg-type]
            keypoints=None if det.keypoints is None else np.asarray(det.keypoints, np.float32),
            emotion=earlier.emotion, class_index=earlier.class_index, probabilities=earlier.probabilities,
            class_names=earlier.class_names, track_id=getattr(det, "track_id", None),
            cam=earlier.cam if cam else None,
            crop_affine=self._crop_affine(det, width, height) if cam and earlier.cam is not None else None,
            crop_size=earlier.crop_size, label_frame=earlier.label_frame,
        )

    def _analyse(self, rgb: np.ndarray, kind: str, cam: bool, timings: dict[str, float]) -> list[FaceResult]:
        t0 = time.perf_counter()
        dets = self.detect_faces(rgb, kind)
        timings["detect"] = _ms(t0)
        return self.classify_faces(rgb, dets, cam, timings)

    # -- what was used (summary.json) ----------------------------------------------------------
    def detector_mode_for(self, kind: str) -> str:
        """What detects faces for ``kind`` (``"image"``, ``"video"`` file, live ``"stream"``): see
        :meth:`eacfer.infer.detect.policy.DetectorPolicy.mode_for`.

        Example:
            >>> Predictor.detector_mode_for(predictor, "video")  # doctest: +SKIP
            'finder'
        """
        return self.detector_policy.mode_for(kind)

    def model_record(self, model_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The ``"model"`` entry of every result file (``predict`` and ``video`` summaries, job identities): the
        model file's name and SHA-256 (``model_file``, default the file this predictor was loaded from),
        backbone, classes, input and face size, backend and precision.

        Example:
            >>> predictor.model_record()["backbone"]  # doctest: +SKIP
            'resnet50_msceleb'
        """
        info = self.classifier.info
        rec: dict[str, Any] = {"name": None, "sha256": None}
        source = model_file if model_file is not None else self.model_path
        if source is not None:
            from eacfer.utils.integrity import file_sha256

            path = Path(source)
            rec["name"] = path.name
            try:
                rec["sha256"] = file_sha256(path)
            except OSError as e:  # moved or deleted since loading: say so instead of failing the run
                log.warning("%s: cannot hash the model file (%s)", path, e)
        rec.update({"backbone": str(info.backbone), "classes": list(info.class_names),
                    "input_size": int(info.input_size), "face_size": info.face_size, "backend": self.backend,
                    "precision": str(getattr(self.classifier, "precision", "fp32"))})
        return rec

    def detector_settings(self, kind: str = "image") -> dict[str, Any]:
        """Detector name, model (full/short range) for ``kind``, score threshold, face cap and, for BlazeFace,
        what runs the network (:meth:`eacfer.infer.detect.policy.DetectorPolicy.settings`)."""
        return self.detector_policy.settings(kind)

    def predict(
        self, image: Any, color: str = "rgb", cam: bool | None = None, keep_image: bool = True
    ) -> FrameResult:
        """Detect and classify every face of one image.

        Args:
            image: a file path, a numpy array (in ``color`` order) or a PIL image.
            color: channel order of a numpy array, ``"rgb"`` (default) or ``"bgr"`` (OpenCV).
            cam: compute attention maps (default: the predictor's ``cam`` setting).
            keep_image: keep the decoded RGB image on the result (``FrameResult.image``).

        Raises:
            eacfer.data.imageio.ImageLoadError: an unreadable file (message ``"<path>: reason"``).

        Example:
            >>> r = predictor.predict(frame_bgr, color="bgr")  # doctest: +SKIP
        """
        cam = self.cam if cam is None else bool(cam)
        if cam and not self.classifier.has_cams:
            raise ValueError("this model cannot produce attention maps (an .onnx exported without --with-cams)")
        timings: dict[str, float] = {}
        t_all = t0 = time.perf_counter()
        source = None
        if isinstance(image, (str, os.PathLike)):
            from eacfer.data.imageio import load_image

            source = str(image)
            rgb = load_image(Path(image))
        elif isinstance(image, np.ndarray):
            rgb = to_rgb_array(image, color)
        elif hasattr(image, "mode") and hasattr(image, "convert"):  # PIL image
            rgb = _pil_to_rgb(image)
        else:
            raise ValueError(f"cannot predict on a {type(image).__name__}; give a path, numpy array or PIL image")
        timings["decode"] = _ms(t0)
        faces = self._analyse(rgb, "image", cam, timings)
        timings["total"] = _ms(t_all)
        from eacfer.infer.detect.fallback import detection_note

        note = None if self.detector_name == "none" else \
            detection_note(self._detector_for("image"), len(faces), self.detector_name)
        return FrameResult(faces, (int(rgb.shape[1]), int(rgb.shape[0])), timings,
                           image=rgb if keep_image else None, source=source, note=note)

    def stream(
        self, source: Any, every: int = 1, max_frames: int | None = None, cam: bool | None = None,
        pipeline: str = "threaded",
    ) -> Iterator[FrameResult]:
        """Yield a :class:`FrameResult` for every frame of a video file, camera index or URL, in order.

        Args:
            source: path, camera index, URL, or an already opened :class:`eacfer.infer.stream.sources.FrameSource`
                (which is then closed when the generator finishes).
            every: analyse every N-th frame; the frames in between come with ``processed=False``.
            max_frames: stop after this many frames read.
            pipeline: ``"threaded"`` (default: decode, detect and classify overlap on threads; live sources
                drop frames they cannot keep up with) or ``"sequential"`` (one stage after another).

        The source's ``stop_reason`` (end of file, truncated file, lost camera) is on the generator's
        :class:`~eacfer.infer.stream.sources.FrameSource`; pass an opened source to read it afterwards.
        :meth:`frames` gives the pipeline object itself (dropped frames, latency percentiles).

        Example:
            >>> for r in predictor.stream("clip.mp4", every=2):  # doctest: +SKIP
            ...     print(r.index, [f.emotion for f in r.faces], r.latency_ms)
        """
        from eacfer.infer.stream.pipeline import check_stream_args
        from eacfer.infer.stream.sources import FrameSource, open_source

        check_stream_args(every, max_frames, pipeline)
        src = source if isinstance(source, FrameSource) else open_source(source)
        try:
            frames = self.frames(src, every=every, max_frames=max_frames, cam=cam, pipeline=pipeline)
            yield from frames
        finally:
            if not isinstance(source, FrameSource):
                src.close()

    def reset_tracking(self, kind: str) -> None:
        """Forget the tracks of the video face finder for ``kind`` (a new source or a seek); ids restart at 1."""
        det = self._detectors.get(kind)
        if det is not None and hasattr(det, "reset"):
            det.reset()

    def detection_stats(self) -> dict[str, Any] | None:
        """Coverage figures of the video face finder for the latest stream (frames with faces, tracks
        opened/closed/rejected, detections per frame, scans), or ``None`` when no finder ran."""
        for kind in ("video", "stream"):
            det = self._detectors.get(kind)
            if det is not None and hasattr(det, "stats"):
                return det.stats()
        return None

    def frames(self, src: Any, every: int = 1, max_frames: int | None = None, cam: bool | None = None,
               pipeline: str = "threaded", **kw: Any) -> Any:
        """The frame pipeline over an opened source (see :mod:`eacfer.infer.stream.pipeline`); iterate it for results.

        Example:
            >>> with predictor.frames(open_source(0)) as fr:   # doctest: +SKIP
            ...     for r in fr: ...
            >>> fr.stats()["dropped_frames"]                    # doctest: +SKIP
            3
        """
        from eacfer.infer.stream.pipeline import check_stream_args, open_frames

        check_stream_args(every, max_frames, pipeline)
        cam = self.cam if cam is None else bool(cam)
        return open_frames(self, src, pipeline, every=every, max_frames=max_frames, cam=cam, **kw)

    def close(self) -> None:
        """Release the detectors' native resources."""
        for det in self._detectors.values():
            try:
                det.close()
            except Exception:  # closing is best effort
                log.debug("detector close failed", exc_info=True)
        self._detectors.clear()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
