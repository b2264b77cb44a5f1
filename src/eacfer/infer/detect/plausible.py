"""Does a detection look like a face? Keypoint geometry checks that reject text, logos and patterns.

BlazeFace and RetinaFace predict the keypoints together with the box. On a real face they sit where a face
has them; on lettering or a texture that the network took for a face they are scattered. The rule, in the
frame of the eye line (origin between the eyes, x along the eyes), with ``w``, ``h`` the box size:

* the eye line is tilted by at most ``max_tilt`` degrees (default 50°; photos here go to ±30°);
* the eyes are ``0.12 w`` … ``0.8 w`` apart and lie inside the box grown by 25 % on each side;
* the nose tip is not above the eye line: ``-0.05 h`` … ``0.7 h`` below it (small faces' keypoints are
  coarse: a 40 px face's nose was measured at 0.00 h), and no further sideways from the eyes'
  midpoint than the eyes are apart (a profile turns it sideways, never outside the face);
* the mouth (centre, or the mean of the two corners for five keypoints) is below the nose by ``>= -0.05 h``
  and at most ``0.9 h`` below the eye line.

A detection without keypoints (Haar) is always plausible: there is nothing to check.
"""

from __future__ import annotations

import math

import numpy as np

from eacfer.infer.detect.base import Detection


def _mouth(kp: np.ndarray) -> np.ndarray:
    # BlazeFace: row 3 is the mouth centre; RetinaFace (5 points): rows 3, 4 are the mouth corners.
    return (kp[3] + kp[4]) / 2.0 if len(kp) == 5 else kp[3]


def implausible_reason(det: Detection, max_tilt: float = 50.0) -> str | None:
    """Why ``det`` does not look like a face, or ``None`` when it does.

    Example:
        >>> kp = np.array([[30, 40], [70, 40], [50, 60], [50, 80], [10, 50], [90, 50]], np.float32)
        >>> implausible_reason(Detection((0, 0, 100, 100), 0.9, kp)) is None
        True
        >>> implausible_reason(Detection((0, 0, 100, 100), 0.9, kp[[3, 1, 2, 0, 4, 5]]))
        'eye line tilted 63°'
    """
    kp = det.keypoints
    if kp is None or len(kp) < 4:
        return None
    kp = np.asarray(kp, np.float64)
    x, y, w, h = det.full_box if det.full_box is not None else det.box
    if w <= 0 or h <= 0:
        return "empty box"
    eye_vec = kp[1] - kp[0]
    eye_dist = float(np.hypot(*eye_vec))
    tilt = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    if abs(tilt) > max_tilt:
        return f"eye line tilted {abs(tilt):.0f}°"
    if not 0.12 * w <= eye_dist <= 0.8 * w:
        return f"eyes {eye_dist / w:.2f} box widths apart"
    gx, gy = 0.25 * w, 0.25 * h
    for e in kp[:2]:
        if not (x - gx <= e[0] <= x + w + gx and y - gy <= e[1] <= y + h + gy):
            return "an eye outside the box"
    c, s = eye_vec / max(eye_dist, 1e-9)
    mid = (kp[0] + kp[1]) / 2.0

    def local(p: np.ndarray) -> tuple[float, float]:
        d = p - mid
        return float(c * d[0] + s * d[1]), float(-s * d[0] + c * d[1])  # along the eyes, below them

    nx, ny = local(kp[2])
    my = local(_mouth(kp))[1]  # only the mouth's height is part of the rule (module docstring)
    if not -0.05 * h <= ny <= 0.7 * h:
        return f"nose {ny / h:.2f} box heights below the eyes"
    if abs(nx) > max(eye_dist, 0.1 * w):
        return "nose beside the face"
    if my < ny - 0.05 * h or my > 0.9 * h:
        return "mouth not below the nose"
    return None


def is_plausible(det: Detection, max_tilt: float = 50.0) -> bool:
    """``True`` when :func:`implausible_reason` finds nothing wrong.

    Example:
        >>> is_plausible(Detection((0, 0, 10, 10), 0.9))  # no keypoints: nothing to check
        True
    """
    return implausible_reason(det, max_tilt) is None
