"""Detect faces, align them like RAF-DB crops and classify them — one image or a stream of frames.

The predictor only computes: it never displays or writes files. ``eacfer predict``, ``eacfer video`` and
the desktop app all use it.

* ``predict(image)`` accepts a path, a numpy array (``color="rgb"`` or ``"bgr"`` says which; grayscale,
  alpha and 16-bit arrays are converted) or a PIL image, and returns a :class:`FrameResult`.
* All faces of a frame go through the classifier in **one batch**.
* ``stream(source)`` yields a :class:`FrameResult` per frame read, with ``image`` set to the RGB frame.
  With ``every=N`` only every N-th frame is analysed; the others are yielded with ``processed=False`` and
  no faces, so a writer can still output every frame. Track ids are not assigned here: the caller owns an
  :class:`eacfer.infer.tracking.IoUTracker` (``eacfer video`` and the UI each keep their own).
* ``detector_mode="auto"`` uses MediaPipe's full-range model for photos and video files and the
  short-range one for live cameras/streams (measured here: ≈2.1 vs ≈7.6 ms per 640×360 frame; webcam
  faces are close and large). Short-range misses small faces (an ≈80 px face in a 640×360 frame was found
  in 12 of 25 frames vs 25/25 with full-range), so files keep full-range; pass ``detector_mode="short"``
  to trade that for speed.
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

from eacfer.infer.backends import Classifier, load_classifier
from eacfer.infer.results import FaceResult, FrameResult

log = logging.getLogger(__name__)

COLORS = ("rgb", "bgr")


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def to_rgb_array(image: np.ndarray, color: str = "rgb") -> np.ndarray:
    """Any H×W, H×W×1/3/4 uint8/uint16/float array in ``color`` order → contiguous H×W×3 uint8 RGB.

    Example:
        >>> to_rgb_array(np.zeros((4, 4), np.uint8)).shape
        (4, 4, 3)
    """
    if color not in COLORS:
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise ValueError(f"expected an H×W, H×W×3 or H×W×4 image array, got shape {a.shape}")
    if a.dtype != np.uint8:
        if a.dtype == np.uint16:
            a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        elif np.issubdtype(a.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(a)) <= 1.0 else 1.0
            a = np.clip(np.nan_to_num(a) * scale, 0, 255).round().astype(np.uint8)
        else:
            a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
    a = a[:, :, :3]  # alpha dropped: arrays are frames, not cut-outs (files go through load_image)
    if color == "bgr":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def _pil_to_rgb(im: Any) -> np.ndarray:
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im) or im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        from PIL import Image

        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # same white background as load_image
        im = Image.alpha_composite(bg, rgba)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return to_rgb_array(np.asarray(im).astype(np.uint16) if im.mode.startswith("I;16") else
                            np.clip(np.asarray(im), 0, 65535).astype(np.uint16))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


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
    ):
        self.classifier = classifier
        self.detector_name = detector
        self.detector_mode = detector_mode
        self.score_threshold = float(score_threshold)
        self.cam = bool(cam)
        self.max_faces = max_faces
        if cam and not classifier.has_cams:
            raise ValueError("this model cannot produce attention maps (an .onnx exported without --with-cams)")
        self._detectors: dict[str, Any] = {}
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
    ) -> Predictor:
        """Open a ``.pt`` or ``.onnx`` model (see :func:`eacfer.infer.backends.load_classifier`) and a detector.

        ``precision="int8"`` runs a checked int8 model (see ``docs/PRECISION.md``); fp32 is the default.
        """
        clf = load_classifier(path, device=device, backend=backend, threads=threads, precision=precision)
        return cls(clf, detector=detector, detector_mode=detector_mode, score_threshold=score_threshold,
                   cam=cam, max_faces=max_faces)

    # -- properties ------------------------------------------------------------------------------
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
    def _detector_for(self, kind: str) -> Any:
        """The detector for photos (``kind="image"``) or streams (``"stream"``), created on first use."""
        mode = self.detector_mode
        if self.detector_name == "mediapipe" and mode == "auto":
            mode = "short" if kind == "stream" else "full"
        if mode not in self._detectors:
            from eacfer.infer.detect import create_detector

            kw: dict[str, Any] = {"score_threshold": self.score_threshold}
            if self.detector_name == "mediapipe":
                kw["mode"] = mode
            self._detectors[mode] = create_detector(self.detector_name, **kw)
        return self._detectors[mode]

    # -- core ------------------------------------------------------------------------------------
    def _crops(self, rgb: np.ndarray, dets: list[Any]) -> np.ndarray:
        """N×input_size×input_size×3 model inputs, made the way the training images were.

        With a ``face_size`` (RAF-DB: faces aligned at 100×100, resized to 224 by training) each face is
        cropped at ``face_size`` and then resized to ``input_size`` with the training resize (Pillow
        bilinear), so it has the sharpness the model learnt from; a face cropped straight at 224 from a
        high-resolution photo would be sharper than any training image. Without one, faces are cropped at
        ``input_size`` directly. With ``detector="none"`` the whole image is the face.
        """
        from PIL import Image

        size, face = self.input_size, self.face_size or self.input_size

        def resize(img: np.ndarray, side: int) -> np.ndarray:
            if img.shape[:2] == (side, side):
                return img
            return np.array(Image.fromarray(np.ascontiguousarray(img)).resize((side, side), Image.BILINEAR))

        if self.detector_name == "none":
            # an aligned face of the training size (e.g. a RAF-DB image) gets exactly the evaluation input
            return resize(resize(rgb, face), size)[None]
        from eacfer.infer.align import align_faces

        crops = align_faces(rgb, dets, face)
        return crops if face == size else np.stack([resize(c, size) for c in crops])

    def _analyse(self, rgb: np.ndarray, kind: str, cam: bool, timings: dict[str, float]) -> list[FaceResult]:
        h, w = rgb.shape[:2]
        size = self.input_size
        t0 = time.perf_counter()
        if self.detector_name == "none":
            from eacfer.infer.detect import Detection

            dets = [Detection((0.0, 0.0, float(w), float(h)), 1.0, None)]
        else:
            dets = self._detector_for(kind).detect(rgb)
            if self.max_faces is not None:
                dets = dets[: self.max_faces]
        timings["detect"] = _ms(t0)
        if not dets:
            timings["align"] = timings["classify"] = 0.0
            return []
        t0 = time.perf_counter()
        crops = self._crops(rgb, dets)
        if self.detector_name == "none":
            affines = [np.array([[size / w, 0, 0], [0, size / h, 0]], np.float64)]
        else:
            from eacfer.infer.align import crop_transform

            # the same square at any crop side: the map into the input_size crop is all the CAMs need
            affines = [crop_transform(d, size) for d in dets] if cam else [None] * len(dets)
        timings["align"] = _ms(t0)
        t0 = time.perf_counter()
        probs, cams = self.classifier.classify(np.ascontiguousarray(crops), cams=cam)
        timings["classify"] = _ms(t0)
        names = self.class_names
        faces = []
        for i, d in enumerate(dets):
            k = int(np.argmax(probs[i]))
            faces.append(FaceResult(
                box=tuple(float(v) for v in d.box), score=float(d.score),  # type: ignore[arg-type]
                keypoints=None if d.keypoints is None else np.asarray(d.keypoints, np.float32),
                emotion=names[k], class_index=k, probabilities=probs[i], class_names=names,
                cam=None if cams is None else cams[i, k], crop_affine=affines[i] if cam else None,
                crop_size=size,
            ))
        return faces

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
        return FrameResult(faces, (int(rgb.shape[1]), int(rgb.shape[0])), timings,
                           image=rgb if keep_image else None, source=source)

    def stream(
        self, source: Any, every: int = 1, max_frames: int | None = None, cam: bool | None = None
    ) -> Iterator[FrameResult]:
        """Yield a :class:`FrameResult` for every frame of a video file, camera index or URL.

        Args:
            source: path, camera index, URL, or an already opened :class:`eacfer.infer.sources.FrameSource`
                (which is then closed when the generator finishes).
            every: analyse every N-th frame; the frames in between come with ``processed=False``.
            max_frames: stop after this many frames read.

        The source's ``stop_reason`` (end of file, truncated file, lost camera) is on the generator's
        :class:`~eacfer.infer.sources.FrameSource`; pass an opened source to read it afterwards.

        Example:
            >>> for r in predictor.stream("clip.mp4", every=2):  # doctest: +SKIP
            ...     print(r.index, [f.emotion for f in r.faces])
        """
        import cv2

        from eacfer.infer.sources import FrameSource, open_source

        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        cam = self.cam if cam is None else bool(cam)
        src = source if isinstance(source, FrameSource) else open_source(source)
        try:
            it = iter(src)
            while max_frames is None or src.frames_read < max_frames:
                t0 = time.perf_counter()
                item = next(it, None)
                if item is None:
                    break
                index, time_s, frame = item
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                timings = {"decode": _ms(t0)}
                processed = index % every == 0
                kind = "stream" if src.live else "image"
                faces = self._analyse(rgb, kind, cam, timings) if processed else []
                timings["total"] = _ms(t0)
                yield FrameResult(faces, (int(rgb.shape[1]), int(rgb.shape[0])), timings, index=index,
                                  time_s=time_s, image=rgb, source=src.description, processed=processed)
        finally:
            if not isinstance(source, FrameSource):
                src.close()

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
