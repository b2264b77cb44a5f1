"""Face framing from the model file (issue 31): ``face_margin`` and ``face_shift`` reach every crop path.

Specification (eacfer.infer.align): the crop is a square of side max(w, h)·(1 + 2·margin) centred on the box
centre moved towards the top of the face by shift·max(w, h) (perpendicular to the eye line); the predictor and
the throughput workers make their model inputs with the model file's values (align.model_inputs).
"""

from __future__ import annotations

import numpy as np
import pytest

from eacfer.checkpoint import load_checkpoint, save_checkpoint
from eacfer.infer.align import DEFAULT_MARGIN, crop_transform, model_inputs, transform_points
from eacfer.infer.detect import Detection
from eacfer.infer.runtime.starter import starter_model_path


def test_shift_moves_the_crop_centre_up_the_face() -> None:
    det = Detection((10, 20, 50, 50), 0.9)
    m = crop_transform(det, size=100, margin=0.0, shift=0.1)
    # the crop centre (49.5, 49.5) shows the point 5 px (0.1 · 50) above the box centre (35, 45)
    assert np.allclose(transform_points(np.array([[34.5, 39.5]]), m), [[49.5, 49.5]])
    assert np.allclose(crop_transform(det, 100, 0.0, 0.0), crop_transform(det, 100, 0.0))


def test_shift_follows_a_tilted_face() -> None:
    # eyes one above the other: the eye line points down the image (angle +90°), so the face's "up" is +x
    det = Detection((10, 20, 50, 50), 0.9, np.array([[30.0, 40.0], [30.0, 50.0]]))
    m = crop_transform(det, size=100, margin=0.0, shift=0.1)
    assert np.allclose(transform_points(np.array([[39.5, 44.5]]), m), [[49.5, 49.5]], atol=1e-6)


def test_margin_sets_the_square_side() -> None:
    det = Detection((10, 20, 50, 50), 0.9)
    m = crop_transform(det, size=100, margin=0.25)  # side 50 · 1.5 = 75 px → scale 100/75
    assert np.isclose(np.sqrt(abs(np.linalg.det(m[:, :2]))), 100 / 75)


@pytest.fixture(scope="module")
def framed_model(tmp_path_factory):
    """The starter model file with a wide margin and no shift (as a user's model file could say)."""
    payload = load_checkpoint(starter_model_path())
    payload.update(face_margin=0.3, face_shift=0.0)
    path = tmp_path_factory.mktemp("framed") / "model.pt"
    save_checkpoint(path, payload)
    return path


def _image_and_det() -> tuple[np.ndarray, list[Detection]]:
    rgb = np.random.default_rng(0).integers(0, 256, (160, 200, 3)).astype(np.uint8)
    return rgb, [Detection((60, 40, 70, 70), 0.9, np.array([[80.0, 65.0], [110.0, 66.0]]))]


def test_predictor_crops_with_the_model_files_framing(framed_model) -> None:
    from eacfer.infer.predictor import Predictor

    rgb, dets = _image_and_det()
    with Predictor.from_checkpoint(framed_model, device="cpu", backend="torch", detector="none") as p:
        p.detector_name = "haar"  # crop from the given boxes (no detector is run here)
        crops = p._crops(rgb, dets)
        assert (p.face_margin, p.face_shift) == (0.3, 0.0)
        assert np.array_equal(crops, model_inputs(rgb, dets, 64, None, 0.3, shift=0.0))
        assert not np.array_equal(crops, model_inputs(rgb, dets, 64, None, DEFAULT_MARGIN))
        affine = p._crop_affine(dets[0], 200, 160)
        assert np.allclose(affine, crop_transform(dets[0], 64, 0.3, 0.0))
    with Predictor.from_checkpoint(starter_model_path(), device="cpu", backend="torch", detector="none") as s:
        s.detector_name = "haar"
        info = s.classifier.info
        assert np.array_equal(s._crops(rgb, dets), model_inputs(rgb, dets, 64, None, info.face_margin,
                                                                shift=info.face_shift))


def test_throughput_workers_crop_like_the_predictor(framed_model, tmp_path, monkeypatch) -> None:
    """A worker of `predict --workers` crops with the predictor's own recipe (pickled), so with the model file's
    margin: its crops are the predictor's, bit for bit."""
    import pickle

    from PIL import Image

    from eacfer.infer.jobs import pool as batch_pool
    from eacfer.infer.predictor import Predictor

    rgb, dets = _image_and_det()
    photo = tmp_path / "photo.png"
    Image.fromarray(rgb).save(photo)  # PNG: lossless, the worker decodes the same pixels
    with Predictor.from_checkpoint(framed_model, device="cpu", detector="none") as p:
        p.detector_name = "haar"  # crop from the given boxes (no detector is run here)

        class Given:  # the worker's detector: the boxes above
            def detect(self, image):
                return dets

        policy, recipe = pickle.loads(pickle.dumps((p.detector_policy, p.recipe)))  # as the pool sends them
        monkeypatch.setattr(batch_pool, "_WORKER", {"det": Given(), "policy": policy, "recipe": recipe})
        out = batch_pool._detect_one((str(photo), False))
        assert recipe.margin == 0.3
        assert np.array_equal(out["crops"], p._crops(rgb, dets))
        assert np.array_equal(out["crops"], model_inputs(rgb, dets, 64, None, 0.3, shift=0.0))
