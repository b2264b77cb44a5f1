"""Which face detector runs on photos, video files and live streams — said in one place.

:class:`DetectorPolicy` is what the predictor, the worker processes of ``eacfer predict --workers`` and the app
use to make their detectors, so a photo is looked at the same way in each of them. With the default
``mediapipe`` detector in ``auto`` mode:

* photos (``kind="image"``): both BlazeFace models, faces merged, small faces looked for on tiles
  (``small_face``), and RetinaFace as the fallback where BlazeFace finds none (``photo_fallback``, if installed);
* video files (``"video"``): the tracking face finder (:mod:`eacfer.infer.detect.finder`), its scan sweep
  tiling for faces of at least 64 px;
* cameras and streams (``"stream"``): the tracking face finder, live (no tiles: short-range scans).

Any other ``mode`` (``both``/``short``/``full``) runs that BlazeFace model on every frame of every kind; any
other detector (``haar``, ``retinaface``) runs as it is on every kind.

The policy is a small frozen dataclass, so it pickles into worker processes; it makes detectors but does
not keep them (the caller owns and closes them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: what a detector is asked to look at
KINDS = ("image", "video", "stream")


@dataclass(frozen=True)
class DetectorPolicy:
    """The detector settings of a predictor, and which detector each kind of input gets.

    Example:
        >>> p = DetectorPolicy()
        >>> p.mode_for("image"), p.mode_for("video"), p.mode_for("stream")
        ('both', 'finder', 'finder')
        >>> DetectorPolicy(mode="full").mode_for("video")
        'full'
    """

    name: str = "mediapipe"
    mode: str = "auto"
    score_threshold: float = 0.6
    #: photos: faces this small (pixels) are looked for on tiles (detect/tiles.py); 0: no tiles
    small_face: float = 48.0
    #: photos where BlazeFace finds no face are looked at again with this detector (MediaPipe only)
    photo_fallback: str | None = "retinaface"
    max_faces: int | None = None

    def __post_init__(self) -> None:
        if self.small_face < 0:
            raise ValueError(f"small_face must be >= 0 pixels, got {self.small_face}")
        if self.name != "mediapipe":  # the fallback backs up BlazeFace only
            object.__setattr__(self, "photo_fallback", None)
        object.__setattr__(self, "score_threshold", float(self.score_threshold))
        object.__setattr__(self, "small_face", float(self.small_face))

    def mode_for(self, kind: str) -> str:
        """What detects faces for ``kind`` (``"image"``, ``"video"`` file, live ``"stream"``): in auto mode
        ``"both"`` BlazeFace models merged for photos and the tracking ``"finder"`` for videos and cameras;
        otherwise the mode as given (that model on every frame).

        Example:
            >>> DetectorPolicy().mode_for("stream")
            'finder'
        """
        if kind not in KINDS:
            raise ValueError(f"unknown input kind {kind!r}; choose from {', '.join(KINDS)}")
        if self.name == "mediapipe" and self.mode == "auto":
            return "both" if kind == "image" else "finder"
        return self.mode

    def tile_face(self, mode: str, kind: str) -> float:
        """Smallest face looked for on tiles (detect/tiles.py): ``small_face`` for photos and the ``both`` mode;
        in the video finder's scan sweep at least 64 px (fewer tiles); none for live streams (short-range scans).

        Example:
            >>> DetectorPolicy().tile_face("finder", "video"), DetectorPolicy().tile_face("finder", "stream")
            (64.0, 0.0)
        """
        if not self.small_face or mode in ("short", "full") or (mode == "finder" and kind == "stream"):
            return 0.0
        return max(64.0, self.small_face) if mode == "finder" else self.small_face

    def key(self, kind: str, mode: str | None = None) -> str:
        """Which detector object serves ``kind`` (with ``mode`` overriding the policy's): callers that keep
        their detectors keep one per key.

        Example:
            >>> DetectorPolicy().key("image"), DetectorPolicy().key("video")
            ('both+retinaface', 'video')
        """
        mode = mode or self.mode_for(kind)
        if mode == "finder":  # one tracking finder per kind: a video's tracks are not a camera's
            return kind
        return f"{mode}+{self.photo_fallback}" if kind == "image" and self.photo_fallback else mode

    def create(self, kind: str, mode: str | None = None) -> Any:
        """A new detector for ``kind`` (``mode``, MediaPipe's both/short/full, overrides the policy's for this
        detector); unknown or missing detectors raise ``ValueError``.

        Example:
            >>> det = DetectorPolicy(name="haar").create("image")  # doctest: +SKIP
        """
        mode = mode or self.mode_for(kind)
        if mode == "finder":
            from eacfer.infer.detect.finder import make_video_finder

            return make_video_finder(live=kind == "stream", score_threshold=self.score_threshold,
                                     small_face=self.tile_face(mode, kind))
        from eacfer.infer.detect import create_detector

        kw: dict[str, Any] = {"score_threshold": self.score_threshold}
        if self.name == "mediapipe":
            kw.update(mode=mode, small_face=self.small_face)
        if kind == "image" and self.photo_fallback:
            kw["fallback"] = self.photo_fallback
        return create_detector(self.name, **kw)

    def detect(self, detector: Any, rgb: Any) -> list[Any]:
        """The faces ``detector`` (made by :meth:`create`) finds in one RGB image, at most ``max_faces``; with
        ``name="none"`` the whole image is one already-aligned face (``detector`` is not used).

        Example:
            >>> import numpy as np
            >>> DetectorPolicy(name="none").detect(None, np.zeros((20, 30, 3), np.uint8))[0].box
            (0.0, 0.0, 30.0, 20.0)
        """
        if self.name == "none":
            from eacfer.infer.detect.base import Detection

            h, w = rgb.shape[:2]
            return [Detection((0.0, 0.0, float(w), float(h)), 1.0, None)]
        dets = detector.detect(rgb)
        return dets[: self.max_faces] if self.max_faces is not None else dets

    def settings(self, kind: str = "image") -> dict[str, Any]:
        """Detector name, model (full/short range) for ``kind``, score threshold, face cap and, for BlazeFace,
        the smallest face looked for on tiles and what runs the network (``engine``: ``litert`` or
        ``mediapipe``): the ``detector`` entry of result summaries.

        Example:
            >>> DetectorPolicy(name="haar").settings("video")["mode"]
            'auto'
        """
        out: dict[str, Any] = {"name": self.name, "mode": self.mode_for(kind),
                               "score_threshold": self.score_threshold, "max_faces": self.max_faces}
        if self.name == "mediapipe":
            from eacfer.infer.detect import resolve_engine

            out["small_face"] = self.tile_face(out["mode"], kind)  # 0: no tiles for this kind
            out["engine"] = resolve_engine("auto")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
