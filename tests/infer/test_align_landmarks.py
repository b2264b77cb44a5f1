"""Five-point (eyes + mouth) alignment onto RAF-DB's template (#28): a face placed in a photo by a similarity
transform comes back as its aligned crop when framed by its landmarks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eacfer.infer.align import (
    RAFDB_TEMPLATE,
    align_face,
    crop_transform,
    landmark_transform,
    transform_points,
)
from eacfer.infer.detect import Detection


def _aligned_face(seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    return cv2.resize(small, (100, 100), interpolation=cv2.INTER_CUBIC)  # smooth, so resampling error is small


def _place(face, scale=1.7, degrees=6.0, t=(140.0, 90.0)):
    """The face mapped into a 420×320 photo by a similarity (continuous coordinates), and that map."""
    import cv2

    c, s = scale * math.cos(math.radians(degrees)), scale * math.sin(math.radians(degrees))
    m = np.array([[c, -s, t[0]], [s, c, t[1]]])
    # continuous p' = A p + t  ->  pixel centres: p'_cv = A p_cv + t + 0.5 (A·1 − 1)·... computed exactly:
    lin = m[:, :2]
    m_cv = np.hstack([lin, (m[:, 2] + lin @ np.array([0.5, 0.5]) - 0.5)[:, None]])
    photo = cv2.warpAffine(face, m_cv, (420, 320), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return photo, m


def _keypoints(m, kind):
    eyes_mouth = RAFDB_TEMPLATE @ m[:, :2].T + m[:, 2]
    nose = np.array([50.0, 62.0]) @ m[:, :2].T + m[:, 2]
    if kind == "blazeface":  # right eye, left eye, nose tip, mouth centre, two ear tragions
        return np.array([eyes_mouth[0], eyes_mouth[1], nose, eyes_mouth[2], [0, 0], [0, 0]])
    # RetinaFace: eyes, nose, two mouth corners whose mean is the mouth centre
    d = np.array([12.0, 0.0]) @ m[:, :2].T
    return np.array([eyes_mouth[0], eyes_mouth[1], nose, eyes_mouth[2] - d, eyes_mouth[2] + d])


@pytest.mark.parametrize("kind", ["blazeface", "retinaface"])
def test_landmark_crop_recovers_the_aligned_face(kind):
    face = _aligned_face()
    photo, m = _place(face)
    det = Detection((150.0, 100.0, 170.0, 170.0), 0.9, _keypoints(m, kind))
    crop = align_face(photo, det, 100, align="landmarks")
    err = np.abs(crop[5:-5, 5:-5].astype(float) - face[5:-5, 5:-5].astype(float)).mean()
    assert err < 4.0  # resampling only
    # the box framing of the same detection is a different picture
    assert np.abs(align_face(photo, det, 100)[5:-5, 5:-5].astype(float) - face[5:-5, 5:-5]).mean() > 20


def test_landmark_transform_puts_eyes_and_mouth_on_the_template():
    _, m = _place(_aligned_face(), scale=0.8, degrees=-10.0)
    det = Detection((0, 0, 10, 10), 1.0, _keypoints(m, "blazeface"))
    a = landmark_transform(det, 224)
    got = transform_points(_keypoints(m, "blazeface")[[0, 1, 3]] - 0.5, a) + 0.5
    np.testing.assert_allclose(got, RAFDB_TEMPLATE * 2.24, atol=1e-6)


def test_without_usable_keypoints_the_box_framing_is_used():
    photo = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for kps in (None, np.zeros((2, 2)), np.array([[5.0, 5.0]] * 6)):
        det = Detection((40, 30, 60, 60), 0.9, kps)
        assert np.array_equal(align_face(photo, det, 64, align="landmarks"), align_face(photo, det, 64))
    assert landmark_transform(Detection((40, 30, 60, 60), 0.9), 64) is None
    with pytest.raises(ValueError, match="align must be one of"):
        align_face(photo, Detection((40, 30, 60, 60), 0.9), 64, align="eyes")
    assert crop_transform(Detection((40, 30, 60, 60), 0.9), 64).shape == (2, 3)
