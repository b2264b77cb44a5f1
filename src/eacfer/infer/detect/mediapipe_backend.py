"""MediaPipe BlazeFace detectors (short-range and full-range) on the model files bundled in eacfer/assets.

The two ``.tflite`` files come from the mediapipe 0.10.21 wheel (Apache-2.0, see assets/NOTICE); newer
mediapipe wheels no longer ship them, so eacfer carries them and nothing is downloaded at run time.

* short-range (128×128 input, faces within ~2 m, best for webcams): MediaPipe Tasks ``FaceDetector``.
* full-range (192×192 input, small faces in photos): the Tasks ``FaceDetector`` graph only knows the
  short-range decoder (see :mod:`eacfer.infer.detect.blazeface`), so the network is run by the Tasks
  ``ImageEmbedder`` (which hands back the raw output tensors) and decoded in numpy.

Instances are not thread-safe; use each from one thread at a time.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from importlib import resources
from typing import Any

import numpy as np

from eacfer.infer.detect import blazeface
from eacfer.infer.detect.base import Detection, check_rgb_image, finalize, make_detection
from eacfer.infer.detect.quiet import native_stderr_to_log

log = logging.getLogger(__name__)

SHORT_RANGE_FILE = "face_detection_short_range.tflite"
FULL_RANGE_FILE = "face_detection_full_range_sparse.tflite"


def asset_bytes(name: str) -> bytes:
    """Bytes of a file bundled in ``eacfer/assets``.

    Example:
        >>> len(asset_bytes("face_detection_short_range.tflite")) > 100_000
        True
    """
    return resources.files("eacfer").joinpath("assets", name).read_bytes()


def _close_native(task: Any) -> None:
    # Runs from close(), when a detector that was never closed is garbage-collected, and at interpreter exit
    # for one still open. At exit MediaPipe's worker pool (a concurrent.futures executor, shut down before
    # atexit handlers run) is gone and the native close cannot be scheduled; MediaPipe's own __del__ would
    # then print "Exception ignored in __del__ … TypeError" during teardown. So when closing fails we mark
    # the task closed (its handle is what its close()/__del__ test) and let the exiting process free the
    # memory. Callers should still close() or use ``with``: that releases everything deterministically.
    try:
        with native_stderr_to_log():
            task.close()
    except Exception:  # noqa: BLE001 - best effort during shutdown
        log.debug("closing a MediaPipe task failed; marking it closed", exc_info=True)
        with contextlib.suppress(Exception):
            task._handle = None


def _first_import_off_stack() -> None:
    """Import MediaPipe's Tasks the first time on a helper thread.

    Why: the import leaves a frame of its own alive (found with gc.get_referrers: a frame of the import
    machinery stays referenced after the import), and a frame keeps its callers' frames through
    ``f_back``. Imported from a detector's ``__init__``, that chain kept the first detector of every
    process alive for good, so it was never closed by garbage collection. A thread's stack has no
    callers of ours to keep.
    """
    import sys
    import threading

    if "mediapipe.tasks.python.vision" in sys.modules:
        return

    def load() -> None:
        with contextlib.suppress(ImportError):  # reported by _import_mediapipe with its own message
            import mediapipe.tasks.python.vision  # noqa: F401

    t = threading.Thread(target=load, name="eacfer-import-mediapipe")
    t.start()
    t.join()


def _import_mediapipe() -> tuple[Any, Any, Any]:
    _first_import_off_stack()
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ValueError(
            "the 'mediapipe' detector needs the mediapipe package (a core dependency of eacfer): "
            "pip install 'mediapipe>=0.10.30'; or use --detector haar"
        ) from exc
    return mp, BaseOptions, vision


class MediaPipeShortRange:
    """BlazeFace short-range through MediaPipe Tasks ``FaceDetector`` (IMAGE mode, stateless per call).

    Example:
        >>> det = MediaPipeShortRange(score_threshold=0.6)  # doctest: +SKIP
        >>> faces = det.detect(rgb_frame)  # doctest: +SKIP
    """

    name = "mediapipe-short"

    def __init__(self, score_threshold: float = 0.6, min_face: int = 0, max_faces: int = 32) -> None:
        mp, BaseOptions, vision = _import_mediapipe()
        self._mp = mp
        self.score_threshold = float(score_threshold)
        self.min_face = int(min_face)
        opts = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=asset_bytes(SHORT_RANGE_FILE)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=self.score_threshold,
            min_suppression_threshold=blazeface.SHORT_RANGE.suppression_iou,
        )
        with native_stderr_to_log():
            self._det: Any = vision.FaceDetector.create_from_options(opts)
        self._finalizer = weakref.finalize(self, _close_native, self._det)
        self._quiet_calls = 2  # LiteRT logs on the first inferences too
        # Tasks FaceDetector has no num_faces option in Python; cap the list ourselves.
        self.max_faces = int(max_faces)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in an H×W×3 uint8 RGB image, sorted by score."""
        img = check_rgb_image(image_rgb)
        if self._det is None:
            raise RuntimeError("detector is closed")
        h, w = img.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=img)
        if self._quiet_calls:
            self._quiet_calls -= 1
            with native_stderr_to_log():
                res = self._det.detect(image)
        else:
            res = self._det.detect(image)
        out = []
        for d in res.detections:
            b = d.bounding_box
            score = float(d.categories[0].score) if d.categories else 0.0
            kps = None
            if d.keypoints:
                kps = np.array([[k.x * w, k.y * h] for k in d.keypoints], dtype=np.float32)
            out.append(make_detection(b.origin_x, b.origin_y, b.width, b.height, score, kps, w, h))
        return finalize(out, self.min_face)[: self.max_faces]

    def close(self) -> None:
        """Release the MediaPipe graph."""
        self._finalizer()  # closes the native task once; later calls do nothing
        self._det = None

    def __enter__(self) -> MediaPipeShortRange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MediaPipeRaw:
    """Any BlazeFace model run by the Tasks ``ImageEmbedder`` and decoded with :mod:`blazeface`.

    Used for full-range (the default for photos). It also accepts the short-range spec, which the
    tests use to check this decoder against MediaPipe's own FaceDetector.

    Example:
        >>> det = MediaPipeRaw()  # full-range  # doctest: +SKIP
        >>> faces = det.detect(rgb_photo)  # doctest: +SKIP
    """

    name = "mediapipe-full"

    def __init__(
        self,
        score_threshold: float = 0.6,
        min_face: int = 0,
        spec: blazeface.BlazeFaceSpec = blazeface.FULL_RANGE,
        model_file: str = FULL_RANGE_FILE,
        max_faces: int = 32,
    ) -> None:
        mp, BaseOptions, vision = _import_mediapipe()
        self._mp = mp
        self.spec = spec
        if spec != blazeface.FULL_RANGE:
            self.name = f"mediapipe-raw-{spec.input_size}"
        self.score_threshold = float(score_threshold)
        self.min_face = int(min_face)
        self.max_faces = int(max_faces)
        self._anchors = blazeface.ssd_anchor_centers(spec)
        opts = vision.ImageEmbedderOptions(
            base_options=BaseOptions(model_asset_buffer=asset_bytes(model_file)),
            running_mode=vision.RunningMode.IMAGE,
            l2_normalize=False,  # we need the raw tensors, not an embedding
            quantize=False,
        )
        with native_stderr_to_log():
            self._emb: Any = vision.ImageEmbedder.create_from_options(opts)
        self._finalizer = weakref.finalize(self, _close_native, self._emb)
        self._quiet_calls = 2  # LiteRT logs on the first inferences too

    def raw_outputs(self, square: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the network on an input-sized RGB square; returns (N×16 regressors, N logits)."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=square)
        if self._quiet_calls:
            self._quiet_calls -= 1
            with native_stderr_to_log():
                res = self._emb.embed(image)
        else:
            res = self._emb.embed(image)
        n = self.spec.num_boxes
        boxes = scores = None
        for e in res.embeddings:  # identify the two heads by size, not by index
            v = np.asarray(e.embedding, dtype=np.float32)
            if v.size == n * 16:
                boxes = v.reshape(n, 16)
            elif v.size == n:
                scores = v
        if boxes is None or scores is None:
            raise RuntimeError(
                f"unexpected BlazeFace outputs: {[np.size(e.embedding) for e in res.embeddings]}"
            )
        return boxes, scores

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in an H×W×3 uint8 RGB image, sorted by score."""
        img = check_rgb_image(image_rgb)
        if self._emb is None:
            raise RuntimeError("detector is closed")
        square, scale, pad = blazeface.letterbox(img, self.spec.input_size)
        raw_boxes, raw_scores = self.raw_outputs(square)
        return blazeface.to_detections(raw_boxes, raw_scores, self._anchors, self.spec, scale, pad, img.shape,
                                       self.score_threshold, self.min_face, self.max_faces)

    def close(self) -> None:
        """Release the MediaPipe graph."""
        self._finalizer()  # closes the native task once; later calls do nothing
        self._emb = None

    def __enter__(self) -> MediaPipeRaw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
