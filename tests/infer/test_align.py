"""RAF-DB-like alignment: level eyes, square crop with margin, invertible transform."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from eacfer.infer.align import (
    align_face,
    align_faces,
    crop_transform,
    eye_angle,
    invert_affine,
    transform_points,
    warp_map_to_image,
)
from eacfer.infer.detect import Detection, create_detector

FIXTURE = Path(__file__).parents[1] / "fixtures" / "faces" / "astronaut.jpg"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(FIXTURE).convert("RGB"))


@pytest.fixture(scope="module")
def det():
    d = create_detector("mediapipe")
    yield d
    d.close()


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def test_crop_shape_dtype(astronaut, det):
    face = det.detect(astronaut)[0]
    for size in (32, 100, 224):
        crop = align_face(astronaut, face, size)
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    batch = align_faces(astronaut, [face, face], 64)
    assert batch.shape == (2, 64, 64, 3) and batch.dtype == np.uint8
    assert align_faces(astronaut, [], 64).shape == (0, 64, 64, 3)


def test_rotated_face_gets_level_eyes(astronaut, det):
    rot = _rotate(astronaut, 20)  # counter-clockwise in the image
    face = det.detect(rot)[0]
    assert abs(math.degrees(eye_angle(face)) + 20) < 6  # the detector sees the tilt
    m = crop_transform(face, 112)
    eyes = transform_points(face.keypoints[:2], m)
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-6  # exactly level by construction
    assert eyes[0, 0] < eyes[1, 0]
    # and independently: re-detecting on the aligned crop finds level eyes
    crop = align_face(rot, face, 192)
    again = det.detect(crop)
    assert len(again) == 1
    assert abs(math.degrees(eye_angle(again[0]))) < 5


def test_framing_is_rafdb_like(astronaut, det):
    """Face fills most of the crop: eyes in the upper half, mouth in the lower half, eye distance ~1/3-1/2."""
    face = det.detect(astronaut)[0]
    size = 100
    kp = transform_points(face.keypoints, crop_transform(face, size))
    eye_y = kp[:2, 1].mean()
    assert 0.25 * size < eye_y < 0.5 * size
    assert 0.6 * size < kp[3, 1] < 0.85 * size  # mouth
    assert 0.3 * size < kp[1, 0] - kp[0, 0] < 0.55 * size
    assert abs(kp[2, 0] - size / 2) < 0.1 * size  # nose near the vertical centre line
    # a larger margin shows more context: the face gets smaller
    kp2 = transform_points(face.keypoints, crop_transform(face, size, margin=0.3))
    assert kp2[1, 0] - kp2[0, 0] < kp[1, 0] - kp[0, 0]


def test_no_keypoints_no_rotation():
    d = Detection((10.0, 20.0, 40.0, 40.0), 0.9, None)
    m = crop_transform(d, 60, margin=0.0)
    assert abs(m[0, 1]) < 1e-12 and abs(m[1, 0]) < 1e-12
    # box corners map onto crop corners (continuous → OpenCV pixel-centre convention)
    corners = transform_points(np.array([[10 - 0.5, 20 - 0.5], [50 - 0.5, 60 - 0.5]]), m)
    assert np.allclose(corners, [[-0.5, -0.5], [59.5, 59.5]])


def test_crop_content_matches_source_pixels():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
    d = Detection((30.0, 10.0, 50.0, 50.0), 0.9, None)
    crop = align_face(img, d, 50, margin=0.0)  # scale 1, no rotation → exact copy
    assert np.array_equal(crop, img[10:60, 30:80])


def test_face_at_border_replicate_option(astronaut):
    d = Detection((0.0, 0.0, 30.0, 30.0), 0.9, None)
    crop = align_face(astronaut, d, 64, margin=0.5, border="replicate")  # crop extends beyond the corner
    assert crop.shape == (64, 64, 3)
    assert np.array_equal(crop[0, 0], astronaut[0, 0])
    with pytest.raises(ValueError, match="border"):
        align_face(astronaut, d, 64, border="mirror")


def test_face_at_border_padded_black_like_rafdb(astronaut):
    # Default padding is black (RAF-DB's aligned faces are black where their warp left the photo), and the
    # crop is framed on the unclipped box, so the face keeps its place: a face cut by the left edge sits in
    # the right part of the crop, its outside part black.
    img = np.full((100, 100, 3), 200, np.uint8)
    d = Detection((0.0, 20.0, 30.0, 60.0), 0.9, None, full_box=(-30.0, 20.0, 60.0, 60.0))
    crop = align_face(img, d, 60, margin=0.0)
    assert (crop[:, :29] == 0).all()  # the half outside the photo: black
    assert (crop[:, 31:] == 200).all()  # the half inside: the photo
    # framed on the clipped box instead, the face would move: only a quarter of the crop is black
    clipped = align_face(img, Detection(d.box, 0.9, None), 60, margin=0.0)
    assert (clipped[:, :14] == 0).all() and (clipped[:, 16:] == 200).all()


def test_strong_downscale_is_antialiased():
    # Noise seen through a 16× reduction must be averaged (like INTER_AREA), not point-sampled.
    img = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    d = Detection((0.0, 0.0, 800.0, 800.0), 0.9, None)
    crop = align_face(img, d, 50, margin=0.0)
    area = cv2.resize(img, (50, 50), interpolation=cv2.INTER_AREA).astype(np.float64)
    assert np.abs(crop - area).mean() < 2.0  # plain bilinear sampling gives ≈ 30 here
    assert float(crop.std()) < 10


def test_inverse_and_map_back(astronaut, det):
    face = det.detect(_rotate(astronaut, -15))[0]
    m = crop_transform(face, 96)
    inv = invert_affine(m)
    pts = np.array([[0.0, 0.0], [95.0, 10.0], [40.0, 70.0]])
    assert np.allclose(transform_points(transform_points(pts, inv), m), pts)
    assert np.allclose(inv, cv2.invertAffineTransform(m))
    cam = np.zeros((7, 7), np.float32)
    cam[3, 3] = 1.0  # a peak at the crop centre
    back = warp_map_to_image(cam, m, 96, astronaut.shape)
    assert back.shape == astronaut.shape[:2] and back.dtype == np.float32
    peak = np.unravel_index(np.argmax(back), back.shape)[::-1]
    centre_in_image = transform_points(np.array([[47.5, 47.5]]), inv)[0]
    assert np.hypot(*(np.array(peak) - centre_in_image)) < 4
    assert back[0, 0] == 0.0


def test_bad_arguments(astronaut):
    d = Detection((10.0, 10.0, 20.0, 20.0), 0.9, None)
    with pytest.raises(ValueError, match="size"):
        align_face(astronaut, d, 0)
    with pytest.raises(ValueError, match="margin"):
        align_face(astronaut, d, 32, margin=-0.1)
    with pytest.raises(ValueError, match="empty box"):
        align_face(astronaut, Detection((1.0, 1.0, 0.0, 0.0), 0.9), 32)
    with pytest.raises(ValueError, match="H×W×3"):
        align_face(astronaut[..., 0], d, 32)

    # the default framing is the documented "square box with a 10 % margin": a 40-px box with 10 % on each
    # side spans 48 px, so its corners land 4 px (×size/48) inside the crop's corners
    m = crop_transform(Detection((10.0, 20.0, 40.0, 40.0), 0.9, None), 48)
    corners = transform_points(np.array([[10 - 0.5, 20 - 0.5], [50 - 0.5, 60 - 0.5]]), m)
    assert np.allclose(corners, [[4 - 0.5, 4 - 0.5], [44 - 0.5, 44 - 0.5]])
