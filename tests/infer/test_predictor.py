"""Predictor: real face, several faces in one batch, no face, odd image modes, colour order, CAMs, stream."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eacfer.infer.detect.base import box_iou as iou
from eacfer.infer.predictor import Predictor, to_rgb_array
from inference_testutils import FACE, FACE_REGION, compose_faces, make_clip

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, predictor, face_rgb, exported_onnx, …


def _inside(box, region, tol=10):
    x, y, w, h = box
    rx, ry, rw, rh = region
    return x >= rx - tol and y >= ry - tol and x + w <= rx + rw + tol and y + h <= ry + rh + tol


def test_real_face_through_full_predictor(predictor):
    r = predictor.predict(FACE)
    assert r.image_size == (512, 512) and r.source == str(FACE)
    assert len(r.faces) == 1
    f = r.faces[0]
    assert _inside(f.box, FACE_REGION) and f.box[2] > 60
    assert f.score >= 0.6 and f.keypoints.shape == (6, 2)
    assert f.class_names == predictor.class_names and f.emotion == f.class_names[f.class_index]
    assert f.probabilities.shape == (7,) and abs(float(f.probabilities.sum()) - 1) < 1e-5
    assert f.probability == max(f.prob_dict().values())
    assert {"decode", "detect", "align", "classify", "total"} <= set(r.timings)
    d = r.to_dict()
    assert d["faces"][0]["emotion"] == f.emotion and len(d["faces"][0]["probabilities"]) == 7


def test_several_faces_classified_in_one_batch(predictor, face_rgb, monkeypatch):
    img = compose_faces(face_rgb, n=3)
    calls = []
    orig = predictor.classifier.classify

    def spy(crops, cams=False):
        calls.append(crops.copy())
        return orig(crops, cams)

    monkeypatch.setattr(predictor.classifier, "classify", spy)
    r = predictor.predict(img)
    assert len(r.faces) == 3
    assert [len(c) for c in calls] == [3]  # one batch for the frame
    left, mid, right = sorted(r.faces, key=lambda f: f.box[0])
    assert mid.box[0] - left.box[0] > 100 and right.box[0] - mid.box[0] > 100  # three different faces
    # each face carries the result of its own crop (batching mixes nothing up)
    for i, f in enumerate(r.faces):
        alone, _ = orig(calls[0][i:i + 1])
        np.testing.assert_allclose(f.probabilities, alone[0], atol=1e-5)
    assert np.abs(r.faces[0].probabilities - r.faces[1].probabilities).max() > 1e-3


def test_no_face_image(predictor):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320]
    img = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    r = predictor.predict(img)
    assert r.faces == [] and r.timings["classify"] == 0.0


@pytest.mark.parametrize("kind", ["rgba", "gray", "exif", "pil", "gray16"])
def test_odd_inputs_find_the_same_face(predictor, face_rgb, tmp_path, kind):
    ref = predictor.predict(face_rgb).faces[0]
    if kind == "rgba":
        p = tmp_path / "a.png"
        Image.fromarray(face_rgb).convert("RGBA").save(p)
        src = p
    elif kind == "gray":
        p = tmp_path / "g.jpg"
        Image.fromarray(face_rgb).convert("L").save(p, quality=95)
        src = p
    elif kind == "gray16":
        src = (face_rgb.mean(2) * 257).astype(np.uint16)  # a 16-bit grayscale array
    elif kind == "exif":
        # stored sideways with EXIF orientation 6 ("rotate 90° clockwise to display")
        p = tmp_path / "rot.jpg"
        ex = Image.Exif()
        ex[0x0112] = 6
        Image.fromarray(np.rot90(face_rgb, k=1)).save(p, exif=ex, quality=95)
        src = p
    else:
        src = Image.open(FACE)
    r = predictor.predict(src)
    assert r.image_size == (512, 512)
    assert len(r.faces) == 1
    assert iou(r.faces[0].box, ref.box) > 0.8


def test_bgr_and_rgb_arrays_agree_when_stated(predictor, face_rgb):
    bgr = np.ascontiguousarray(face_rgb[:, :, ::-1])
    a = predictor.predict(face_rgb, color="rgb").faces[0]
    b = predictor.predict(bgr, color="bgr").faces[0]
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    assert a.box == b.box
    # stating the wrong order changes what the network sees
    wrong = predictor.predict(bgr, color="rgb").faces
    assert len(wrong) == 1  # the face is still found with swapped channels …
    assert not np.allclose(wrong[0].probabilities, a.probabilities, atol=1e-6)  # … but classified from other pixels
    with pytest.raises(ValueError, match="color"):
        predictor.predict(face_rgb, color="hsv")


def test_to_rgb_array_conversions():
    assert to_rgb_array(np.full((2, 2, 4), 7, np.uint8)).shape == (2, 2, 3)
    assert to_rgb_array(np.full((2, 2), 65535, np.uint16))[0, 0, 0] == 255
    assert to_rgb_array(np.full((2, 2, 3), 1.0, np.float32))[0, 0, 0] == 255
    px = to_rgb_array(np.array([[[1, 2, 3]]], np.uint8), color="bgr")
    assert px.tolist() == [[[3, 2, 1]]]
    with pytest.raises(ValueError, match="image array"):
        to_rgb_array(np.zeros((2, 2, 5), np.uint8))


def test_cam_in_crop_and_image_space(predictor):
    r = predictor.predict(FACE, cam=True)
    f = r.faces[0]
    assert f.cam is not None and f.cam.ndim == 2
    crop = f.cam_crop()
    assert crop.shape == (64, 64) and crop.min() >= 0 and crop.max() <= 1.0 + 1e-6
    m = f.cam_image(r.image_size)
    assert m.shape == (512, 512)
    ys, xs = np.nonzero(m > 1e-3)
    # the map lives around the face (box plus the alignment margin), nowhere else
    x, y, w, h = f.box
    assert xs.min() >= x - w and xs.max() <= x + 2 * w and ys.min() >= y - h and ys.max() <= y + 2 * h
    assert predictor.predict(FACE, cam=False).faces[0].cam is None


def test_detector_none_whole_image_is_the_face(model_pt, face_rgb):
    with Predictor.from_checkpoint(model_pt, device="cpu", detector="none") as p:
        r = p.predict(face_rgb[:200, :180])
        assert len(r.faces) == 1 and r.faces[0].box == (0.0, 0.0, 180.0, 200.0)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_detector_none_matches_evaluation_preprocessing(model_pt, face_rgb, backend):
    """A pre-aligned 100×100 face with --detector none gets exactly what `eacfer eval` feeds the model
    (Pillow bilinear resize, as the official code's transforms.Resize), so the probabilities agree."""
    import torch

    from eacfer.checkpoint import load_model
    from eacfer.data.transforms import EvalTransform

    face = np.asarray(Image.fromarray(face_rgb[40:240, 140:340]).resize((100, 100), Image.BILINEAR))
    net, info = load_model(model_pt)
    with torch.no_grad():
        ref = torch.softmax(net(EvalTransform(info.input_size, info.mean, info.std)(face)[None]), 1)[0].numpy()
    with Predictor.from_checkpoint(model_pt, device="cpu", detector="none", backend=backend) as p:
        got = p.predict(face).faces[0].probabilities
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 if backend == "torch" else 1e-4)


def test_faces_cropped_at_the_training_face_size_then_resized(face_rgb, tmp_path, monkeypatch):
    """A model trained on 100×100 faces (face_size 100) at input 64: each face is cropped at 100 and
    resized to 64 the way training resized it, so it has the training images' sharpness."""
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.data.transforms import EvalTransform
    from eacfer.infer.align import align_faces
    from eacfer.infer.detect import create_detector
    from eacfer.modelinfo import ModelInfo

    torch.manual_seed(0)
    net = create_model("mobilenet_v2").eval()
    path = tmp_path / "m.pt"
    save_model(path, net, ModelInfo("mobilenet_v2", list(RAFDB_CLASSES), 64, list(IMAGENET_MEAN),
                                    list(IMAGENET_STD), face_size=100))
    with Predictor.from_checkpoint(path, device="cpu", backend="torch", detector_mode="full") as p:
        assert p.face_size == 100
        seen = []
        real = p.classifier.classify

        def spy(crops, cams=False):
            seen.append(crops.copy())
            return real(crops, cams=cams)

        monkeypatch.setattr(p.classifier, "classify", spy)
        r = p.predict(face_rgb, cam=True)
    assert len(r.faces) == 1 and seen[0].shape == (1, 64, 64, 3)
    dets = create_detector("mediapipe", mode="full").detect(face_rgb)
    at_100 = align_faces(face_rgb, dets, 100)[0]
    expected = np.asarray(Image.fromarray(at_100).resize((64, 64), Image.BILINEAR))
    np.testing.assert_array_equal(seen[0][0], expected)
    # = what evaluating that 100×100 face gives (EvalTransform resizes 100 → 64 the same way)
    with torch.no_grad():
        ref = torch.softmax(net(EvalTransform(64)(at_100)[None]), 1)[0].numpy()
    np.testing.assert_allclose(r.faces[0].probabilities, ref, atol=1e-5)
    assert r.faces[0].cam is not None and r.faces[0].crop_size == 64  # CAM geometry in the 64 px crop


def test_bad_inputs(predictor, tmp_path):
    from eacfer.data.imageio import ImageLoadError

    bad = tmp_path / "x.jpg"
    bad.write_text("not an image")
    with pytest.raises(ImageLoadError, match="x.jpg"):
        predictor.predict(bad)
    with pytest.raises(ValueError, match="cannot predict on a list"):
        predictor.predict([1, 2, 3])


def test_stream_yields_every_frame_with_timings(predictor, face_rgb, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", face_rgb, frames=9)
    results = list(predictor.stream(clip, every=3))
    assert [r.index for r in results] == list(range(9))
    assert [r.processed for r in results] == [i % 3 == 0 for i in range(9)]
    assert all(len(r.faces) == 1 for r in results if r.processed)
    assert all(r.faces == [] for r in results if not r.processed)
    assert results[0].image.shape == (360, 640, 3)
    assert results[1].time_s == pytest.approx(1 / 25, abs=1e-3)
    assert {"decode", "detect", "classify"} <= set(results[0].timings)
    assert len(list(predictor.stream(clip, max_frames=4))) == 4
    with pytest.raises(ValueError, match="every"):
        next(predictor.stream(clip, every=0))


@pytest.mark.parametrize("as_path", [False, True])
def test_predictor_given_a_model_file_points_to_from_checkpoint(as_path):
    """``Predictor("model.onnx")`` must fail at once with the fix, not later with an AttributeError."""
    from pathlib import Path

    model = Path("model.onnx") if as_path else "model.onnx"
    with pytest.raises(TypeError, match=r"Predictor\.from_checkpoint\('model\.onnx'\)"):
        Predictor(model, detector="none")
