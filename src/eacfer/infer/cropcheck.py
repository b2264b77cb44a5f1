"""Are these images face crops? A cheap check before evaluating a labelled folder.

``eacfer eval`` classifies every image whole, as the model's training crops were made (an aligned face filling
the picture). Given whole photos (a posed set's 640×490 frames, holiday pictures) the model sees mostly
background and a small face, and its predictions mean little (a posed set once came out as one class).
:func:`face_crop_check` runs the face detector on a few images spread over the set and measures how much of
each image the largest face covers: measured here with BlazeFace, an aligned crop of the bundled portrait is
covered 81–93% (48 to 224 px), the whole portrait 3–4%, its head-and-shoulders cut 17–20%.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

#: A face crop's largest face covers at least this share of the image (aligned crops: ~0.8; photos: < 0.2).
MIN_COVER = 0.35
#: Images looked at (spread evenly over the set): enough for a majority, cheap on a CPU (~0.1 s each).
SAMPLE = 8


def face_crop_check(paths: Sequence[str | os.PathLike[str]], n: int = SAMPLE, min_cover: float = MIN_COVER,
                    detector: Any = None) -> dict[str, Any]:
    """Detect faces in up to ``n`` of ``paths`` (evenly spread) and judge whether the images are face crops.

    Returns ``checked`` (images read), ``with_face``, ``small_face`` (a face covering less than ``min_cover``
    of its image), ``covers`` (the largest face's share per image with a face) and ``face_crops``: False when
    most images with a face show it small (whole photos), True when most show it large, None when no face
    was found (nothing to judge: tight or tiny crops may defeat the detector). With ``face_crops`` False,
    ``warning`` holds a one-line message naming an example file. ``detector`` defaults to BlazeFace.

    Example:
        >>> r = face_crop_check(["photos/happy/IMG_0001.jpg", "photos/sad/IMG_0002.jpg"])  # doctest: +SKIP
        >>> r["face_crops"], r["warning"]                                                   # doctest: +SKIP
        (False, 'photos/happy/IMG_0001.jpg ...: 2 of 2 sampled images show a face covering under 35% ...')
    """
    from eacfer.data.imageio import ImageLoadError, load_image

    paths = list(paths)
    if not paths:
        return {"checked": 0, "with_face": 0, "small_face": 0, "covers": [], "face_crops": None}
    step = max(1, len(paths) // n)
    sample = paths[::step][:n]
    own = detector is None
    if own:
        from eacfer.infer.detect import create_detector

        try:
            detector = create_detector("mediapipe")
        except Exception as e:  # noqa: BLE001 — advisory only: a missing backend never stops an evaluation
            log.debug("face-crop check skipped: %s", e)
            return {"checked": 0, "with_face": 0, "small_face": 0, "covers": [], "face_crops": None}
    covers: list[float] = []
    small: list[str] = []
    checked = 0
    try:
        for p in sample:
            try:
                img = load_image(p)
            except (ImageLoadError, OSError):
                continue  # the evaluation reports broken images itself
            checked += 1
            try:
                faces = detector.detect(img)
            except Exception as e:  # noqa: BLE001 — an image the detector cannot take (1×1 px...) says nothing
                log.debug("%s: face-crop check skipped this image: %s", p, e)
                continue
            if not faces:
                continue
            cover = max(f.box[2] * f.box[3] for f in faces) / float(img.shape[0] * img.shape[1])
            covers.append(round(cover, 3))
            if cover < min_cover:
                small.append(str(p))
    finally:
        if own:
            detector.close()
    verdict = None if not covers else len(small) * 2 <= len(covers)
    out: dict[str, Any] = {"checked": checked, "with_face": len(covers), "small_face": len(small),
                           "covers": covers, "face_crops": verdict}
    if verdict is False:
        out["warning"] = (
            f"{small[0]}: {len(small)} of {len(covers)} sampled images show a face covering under {min_cover:.0%} "
            f"of the image: these look like whole photos, not face crops; eval classifies each image whole, so "
            f"its accuracy means little here — crop and align the faces first (eacfer predict detects faces in "
            f"whole photos)")
    return out


__all__ = ["MIN_COVER", "SAMPLE", "face_crop_check"]
