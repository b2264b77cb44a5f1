"""One face recipe and one detector policy (issue #25): the predictor and the worker processes of
``eacfer predict --workers`` crop, label and detect by the same objects.

Specification: a photo gets both BlazeFace models (+ the RetinaFace fallback), video files and cameras get the
tracking face finder in ``auto`` mode, any other mode runs that model on every kind (predictor docstring,
detect/policy.py); a face's model input, label, CAM and CAM placement are the same whichever path made them.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from eacfer.infer.detect import Detection
from eacfer.infer.detect.policy import DetectorPolicy
from eacfer.infer.recipe import FaceRecipe, face_results
from inference_testutils import FACE

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, predictor, face_rgb, …


@pytest.mark.parametrize(("policy", "expected"), [
    (DetectorPolicy(), {"image": "both", "video": "finder", "stream": "finder"}),
    (DetectorPolicy(mode="full"), {"image": "full", "video": "full", "stream": "full"}),
    (DetectorPolicy(name="haar"), {"image": "auto", "video": "auto", "stream": "auto"}),
])
def test_policy_says_which_detector_runs_on_each_kind(policy, expected):
    assert {k: policy.mode_for(k) for k in expected} == expected
    with pytest.raises(ValueError, match="unknown input kind"):
        policy.mode_for("photo")


def test_policy_tiles_and_fallback():
    p = DetectorPolicy(small_face=40.0)
    assert p.tile_face("both", "image") == 40.0
    assert p.tile_face("finder", "video") == 64.0  # the scan sweep: at least 64 px faces
    assert p.tile_face("finder", "stream") == 0.0 and p.tile_face("full", "image") == 0.0
    assert DetectorPolicy(name="haar").photo_fallback is None  # the fallback backs up BlazeFace only
    assert p.key("image") == "both+retinaface" and p.key("video") != p.key("stream")
    with pytest.raises(ValueError, match="small_face"):
        DetectorPolicy(small_face=-1)
    assert pickle.loads(pickle.dumps(p)) == p  # travels to worker processes as it is


def test_policy_detect_caps_faces_and_none_is_the_whole_image():
    faces = [Detection((float(i), 0.0, 10.0, 10.0), 0.9) for i in range(5)]

    class Fixed:
        def detect(self, rgb):
            return faces

    img = np.zeros((20, 30, 3), np.uint8)
    assert DetectorPolicy(max_faces=2).detect(Fixed(), img) == faces[:2]
    assert DetectorPolicy().detect(Fixed(), img) == faces
    whole = DetectorPolicy(name="none").detect(None, img)
    assert [d.box for d in whole] == [(0.0, 0.0, 30.0, 20.0)]


def test_predictor_detectors_come_from_its_policy(predictor):
    assert predictor.detector_policy.mode_for("video") == predictor.detector_mode_for("video") == "finder"
    assert predictor.detector_settings("stream")["mode"] == "finder"
    # the predictor's photo detector is the one the policy makes for photos (both models + the fallback)
    assert predictor.detector_policy.key("image") in predictor._detectors


def test_face_results_label_cam_and_placement():
    recipe = FaceRecipe(input_size=32, margin=0.2)
    dets = [Detection((10.0, 10.0, 20.0, 20.0), 0.8, full_box=(-4.0, 10.0, 34.0, 20.0), track_id=7)]
    probs = np.array([[0.1, 0.7, 0.2]], np.float32)
    cams = np.arange(3 * 4 * 4, dtype=np.float32).reshape(1, 3, 4, 4)
    (face,) = face_results(dets, probs, cams, recipe, ["a", "b", "c"], 0.0, (100, 80))
    assert (face.emotion, face.class_index, face.track_id) == ("b", 1, 7)
    assert np.array_equal(face.cam, cams[0, 1])
    from eacfer.infer.align import crop_transform

    # the CAM is placed with the unclipped box, as the crop was framed
    assert np.allclose(face.crop_affine, crop_transform(dets[0], 32, 0.2, 0.0))
    (unsure,) = face_results(dets, probs, None, recipe, ["a", "b", "c"], 0.9, (100, 80))
    assert unsure.emotion == "uncertain" and unsure.crop_affine is None and unsure.cam is None


def test_throughput_mode_places_cams_of_edge_faces_like_the_predictor(predictor, face_rgb, tmp_path):
    """A face cut by the image edge: its crop is framed on the unclipped box (``full_box``); the worker
    processes used to send back only the clipped box, so `predict --workers --cam` placed that CAM elsewhere."""
    from PIL import Image

    from eacfer.infer.jobs.pool import pooled

    photo = tmp_path / "edge.png"
    Image.fromarray(np.ascontiguousarray(face_rgb[:, 200:])).save(photo)  # the face's left part is cut off
    one = predictor.predict(photo, cam=True)
    assert one.faces and any(f.box[0] == 0.0 for f in one.faces)
    run = pooled(predictor, [(photo, tmp_path)], workers=1, cam=True)
    try:
        (many, failure, _), = list(run)
    finally:
        run.close()
    assert failure is None and len(many.faces) == len(one.faces)
    for a, b in zip(one.faces, many.faces, strict=True):
        assert a.box == b.box and a.emotion == b.emotion
        np.testing.assert_allclose(b.probabilities, a.probabilities, atol=1e-5)
        np.testing.assert_allclose(b.crop_affine, a.crop_affine, atol=1e-9)


def test_calibration_crops_are_the_predictors(predictor):
    """int8 calibration crops of a face are the model inputs the predictor makes of it (one recipe)."""
    from eacfer.data.imageio import load_image
    from eacfer.infer.runtime.calibration import PortraitVariants, portrait_crops

    crops = portrait_crops(predictor.input_size, variants=PortraitVariants(angles=(), scales=(1.0,)), image=FACE)
    rgb = load_image(FACE)
    dets = predictor.detect_faces(rgb, mode="full")[:1]  # calibration: the full-range model, the one face
    assert np.array_equal(crops[0], predictor._crops(rgb, dets)[0])
