"""Typed results of the predictor: one :class:`FaceResult` per face, one :class:`FrameResult` per image/frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FaceResult:
    """One detected and classified face.

    Attributes:
        box: ``(x, y, w, h)`` in image pixels (floats).
        score: detector confidence.
        keypoints: K×2 image-pixel keypoints from the detector (MediaPipe order) or ``None``.
        emotion: predicted class name; ``class_index`` its index into ``class_names``.
        probabilities: K class probabilities (float32, same order as ``class_names``).
        cam: attention map of the predicted class in crop space (h×w feature grid, raw values) or ``None``.
        crop_affine: 2×3 affine mapping image pixels to crop pixels (``crop_size`` wide), to warp CAMs back.
        track_id / smoothed: filled by :class:`eacfer.infer.stream.tracking.IoUTracker` for streams (``None`` otherwise).
        label_frame: streams: the frame whose face crop gave ``probabilities`` (this frame's index, or an
            earlier one when :class:`eacfer.infer.stream.reuse.LabelReuse` carried a track's labels over).

    Example:
        >>> face.emotion, round(face.probability, 2)  # doctest: +SKIP
        ('Happiness', 0.93)
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None
    emotion: str
    class_index: int
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    cam: np.ndarray | None = None
    crop_affine: np.ndarray | None = None
    crop_size: int = 0
    track_id: int | None = None
    smoothed: np.ndarray | None = None
    label_frame: int | None = None

    @property
    def probability(self) -> float:
        """Probability of the predicted class."""
        return float(self.probabilities[self.class_index])

    @property
    def smoothed_emotion(self) -> str | None:
        """Class with the highest temporally smoothed probability (streams only)."""
        return None if self.smoothed is None else self.class_names[int(np.argmax(self.smoothed))]

    def prob_dict(self, smoothed: bool = False) -> dict[str, float]:
        """``{class name: probability}``."""
        p = self.smoothed if smoothed and self.smoothed is not None else self.probabilities
        return {c: float(v) for c, v in zip(self.class_names, p, strict=True)}

    def cam_crop(self) -> np.ndarray | None:
        """The CAM resized to the crop (``crop_size``²), scaled to [0, 1] (float32)."""
        if self.cam is None:
            return None
        import cv2

        cam = self.cam.astype(np.float32)
        cam = cam - cam.min()
        top = float(cam.max())
        cam = cam / top if top > 0 else cam
        size = self.crop_size or cam.shape[0]
        return cv2.resize(cam, (size, size), interpolation=cv2.INTER_LINEAR)

    def cam_image(self, image_size: tuple[int, int]) -> np.ndarray | None:
        """The CAM warped into image space (H×W float32 in [0, 1], 0 outside the face crop).

        Args:
            image_size: ``(width, height)`` of the image (``FrameResult.image_size``).
        """
        crop = self.cam_crop()
        if crop is None or self.crop_affine is None:
            return None
        import cv2

        w, h = image_size
        # crop_affine maps image → crop, which is exactly the dst→src map WARP_INVERSE_MAP expects
        return cv2.warpAffine(crop, self.crop_affine.astype(np.float64), (int(w), int(h)),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (no CAM array)."""
        d: dict[str, Any] = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "emotion": self.emotion,
            "probabilities": {k: round(v, 6) for k, v in self.prob_dict().items()},
        }
        if self.keypoints is not None:
            d["keypoints"] = np.round(np.asarray(self.keypoints, dtype=float), 2).tolist()
        if self.track_id is not None:
            d["track"] = self.track_id
        if self.smoothed is not None:
            d["smoothed_emotion"] = self.smoothed_emotion
        return d


def frames_csv_columns(class_names: Sequence[str]) -> list[str]:
    """Columns of ``frames.csv`` (``eacfer video``; the app's recordings and snapshots): ``frame, time_s, track,
    x, y, w, h, score, emotion, p_<class>…, smoothed_emotion, s_<class>…, label_frame`` (``score``: detector
    confidence; ``s_``: the track's smoothed probabilities; ``label_frame``: the frame whose face crop gave
    ``emotion`` and ``p_``). Rows: :func:`frame_csv_rows`.

    Example:
        >>> frames_csv_columns(["a", "b"])[7:]
        ['score', 'emotion', 'p_a', 'p_b', 'smoothed_emotion', 's_a', 's_b', 'label_frame']
    """
    return ["frame", "time_s", "track", "x", "y", "w", "h", "score", "emotion",
            *[f"p_{c}" for c in class_names], "smoothed_emotion", *[f"s_{c}" for c in class_names], "label_frame"]


def frame_csv_rows(index: int | None, time_s: float | None, faces: Sequence[FaceResult],
                   num_classes: int) -> list[list[Any]]:
    """The ``frames.csv`` rows of one analysed frame (columns: :func:`frames_csv_columns`): one per face, or one
    row with empty face fields when there is none. ``label_frame`` is the face's own (labels carried over
    from an earlier frame) or this frame's index.

    Example:
        >>> frame_csv_rows(7, 0.28, [], num_classes=2)
        [[7, '0.2800', '', '', '', '', '', '', '', '', '', '', '', '', '']]
    """
    t = f"{float(time_s or 0.0):.4f}"
    if not faces:
        return [[index, t] + [""] * (2 * num_classes + 9)]
    rows = []
    for f in faces:
        smoothed = f.smoothed if f.smoothed is not None else [None] * len(f.probabilities)
        rows.append([index, t, f.track_id, *(f"{v:.1f}" for v in f.box), f"{float(f.score):.4f}",
                     f.emotion, *(f"{float(p):.5f}" for p in f.probabilities), f.smoothed_emotion or "",
                     *("" if p is None else f"{float(p):.5f}" for p in smoothed),
                     index if f.label_frame is None else f.label_frame])
    return rows


@dataclass
class FrameResult:
    """All faces of one image or video frame.

    Attributes:
        faces: one :class:`FaceResult` per face (detector order).
        image_size: ``(width, height)``.
        timings: milliseconds per stage: ``decode``, ``detect``, ``align``, ``classify``, ``total``.
        index / time_s: frame number and timestamp (streams), ``None`` for single images.
        image: the decoded frame, H×W×3 uint8 **RGB** (``Predictor.stream`` always sets it; ``predict``
            sets it unless ``keep_image=False``), so callers can draw without decoding again.
        source: file name or stream description.
        note: photos (``Predictor.predict``): "found by retinaface (…)" or "no face found; …" (what would
            look harder), else ``None``.
        processed: ``False`` for stream frames skipped by ``every=N`` (no detection ran; ``faces`` empty).
        read_at / latency_ms: streams only: ``time.perf_counter()`` when the frame came from the source, and
            its age in ms when its labels were handed to the caller (capture-to-result latency).
    """

    faces: list[FaceResult]
    image_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)
    index: int | None = None
    time_s: float | None = None
    image: np.ndarray | None = None
    source: str | None = None
    processed: bool = True
    read_at: float | None = None
    latency_ms: float | None = None
    note: str | None = None  # photos: faces found only by the fallback detector, or why none (fallback.py)

    def csv_rows(self, num_classes: int) -> list[list[Any]]:
        """This frame's ``frames.csv`` rows (:func:`frame_csv_rows`; ``num_classes`` sizes the empty row).

        Example:
            >>> FrameResult(faces=[], image_size=(4, 4), index=3, time_s=0.12).csv_rows(1)
            [[3, '0.1200', '', '', '', '', '', '', '', '', '', '', '']]
        """
        return frame_csv_rows(self.index, self.time_s, self.faces, num_classes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (no pixels)."""
        return {
            "source": self.source,
            "index": self.index,
            "time_s": self.time_s,
            "image_size": list(self.image_size),
            "faces": [f.to_dict() for f in self.faces],
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }
