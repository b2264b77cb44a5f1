"""``--min-confidence`` ("uncertain") and flip test-time augmentation (#28), on the predictor and in outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eacfer.infer.predictor import UNCERTAIN, Predictor
from eacfer.modelinfo import ModelInfo


class _Fixed:
    """A classifier that returns the given probabilities for every batch (one row per crop)."""

    backend, device, has_cams, precision = "fake", "cpu", False, "fp32"

    def __init__(self, rows):
        self.rows = np.asarray(rows, np.float32)
        self.info = ModelInfo("fake", ["a", "b", "c"], 8, [0.5] * 3, [0.5] * 3)

    def classify(self, crops, cams=False):
        return self.rows[: len(crops)].copy(), None


@pytest.mark.parametrize("top, expected", [(0.49, UNCERTAIN), (0.4999, UNCERTAIN), (0.5, "b"), (0.51, "b"),
                                           (0.9, "b")])
def test_uncertain_exactly_below_the_threshold(top, expected):
    rest = (1 - top) / 2
    p = Predictor(_Fixed([[rest, top, rest]]), detector="none", min_confidence=0.5)
    face = p.predict(np.zeros((8, 8, 3), np.uint8)).faces[0]
    assert face.emotion == expected
    assert face.class_index == 1 and face.probability == pytest.approx(top)  # probabilities are still there
    np.testing.assert_allclose(face.probabilities, [rest, top, rest], rtol=1e-6)


def test_no_threshold_never_says_uncertain():
    p = Predictor(_Fixed([[0.34, 0.33, 0.33]]), detector="none")
    assert p.predict(np.zeros((8, 8, 3), np.uint8)).faces[0].emotion == "a"


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_impossible_threshold_is_refused(bad):
    with pytest.raises(ValueError, match="min-confidence"):
        Predictor(_Fixed([[1, 0, 0]]), detector="none", min_confidence=bad)


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory):
    from inference_testutils import save_random_model

    return save_random_model(tmp_path_factory.mktemp("tta") / "m.pt", size=32)


def test_flip_tta_of_a_mirror_symmetric_face_equals_the_plain_output(tiny_pt):
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (32, 16, 3), dtype=np.uint8)
    symmetric = np.concatenate([half, half[:, ::-1]], axis=1)
    plain = Predictor.from_checkpoint(tiny_pt, detector="none", backend="torch")
    tta = Predictor.from_checkpoint(tiny_pt, detector="none", backend="torch", tta="flip")
    p0 = plain.predict(symmetric).faces[0].probabilities
    p1 = tta.predict(symmetric).faces[0].probabilities
    np.testing.assert_allclose(p1, p0, atol=1e-6)


def test_flip_tta_averages_a_face_and_its_mirror(tiny_pt):
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    plain = Predictor.from_checkpoint(tiny_pt, detector="none", backend="torch")
    tta = Predictor.from_checkpoint(tiny_pt, detector="none", backend="torch", tta="flip")
    a = plain.predict(img).faces[0].probabilities
    b = plain.predict(np.ascontiguousarray(img[:, ::-1])).faces[0].probabilities
    assert not np.allclose(a, b, atol=1e-4)  # the random model is not flip invariant: the test can fail
    np.testing.assert_allclose(tta.predict(img).faces[0].probabilities, (a + b) / 2, atol=1e-6)


def test_predict_summary_counts_uncertain_faces_only_when_asked(tmp_path):
    from PIL import Image

    from eacfer.infer.jobs.photos import predict_paths

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    rows = [[0.3, 0.4, 0.3]]  # top 0.4: uncertain at 0.5, certain without a threshold
    s0 = predict_paths(Predictor(_Fixed(rows), detector="none"), [folder], tmp_path / "o0", progress=False)
    assert "uncertain" not in s0 and "min_confidence" not in s0
    s1 = predict_paths(Predictor(_Fixed(rows), detector="none", min_confidence=0.5), [folder], tmp_path / "o1",
                       progress=False)
    assert s1["uncertain"] == s1["faces"] == 3 and s1["min_confidence"] == 0.5
    saved = json.loads((tmp_path / "o1" / "summary.json").read_text())
    assert saved["uncertain"] == 3
    lines = (tmp_path / "o1" / "predictions.csv").read_text().splitlines()
    assert all(",uncertain," in ln for ln in lines[1:]) and len(lines) == 4


def test_video_summary_counts_uncertain_faces_only_when_asked(tmp_path):
    from eacfer.demo import make_moving_face_clip
    from eacfer.infer.jobs.video import run_video

    clip = make_moving_face_clip(tmp_path / "c.mp4", np.full((40, 40, 3), 120, np.uint8), frames=6, size=(96, 64),
                                 face_height=40)
    rows = [[0.3, 0.4, 0.3]]
    s0 = run_video(Predictor(_Fixed(rows), detector="none"), clip, tmp_path / "v0", write_video=False,
                   progress=False, pipeline="sequential")
    assert "uncertain" not in s0 and "min_confidence" not in s0
    s1 = run_video(Predictor(_Fixed(rows), detector="none", min_confidence=0.5), clip, tmp_path / "v1",
                   write_video=False, progress=False, pipeline="sequential")
    assert s1["faces"] == 6 and s1["uncertain"] == 6 and s1["min_confidence"] == 0.5
    lines = (tmp_path / "v1" / "frames.csv").read_text().splitlines()[1:]
    assert len(lines) == 6 and all(ln.split(",")[8] == "uncertain" for ln in lines)


def test_drawn_and_shown_labels_say_uncertain():
    from eacfer.infer.results import FaceResult
    from eacfer.infer.viz import face_label as drawn
    from eacfer.ui.session import face_label as shown

    p = Predictor(_Fixed([[0.3, 0.4, 0.3]]), detector="none", min_confidence=0.5)
    face = p.predict(np.zeros((8, 8, 3), np.uint8)).faces[0]
    assert drawn(face, index=0) == "0: uncertain 0.40"
    assert shown(face, smoothed=False) == (UNCERTAIN, pytest.approx(0.4))
    sure = FaceResult(box=(0, 0, 8, 8), score=1.0, keypoints=None, emotion="b", class_index=1,
                      probabilities=np.array([0.3, 0.4, 0.3]), class_names=("a", "b", "c"))
    assert drawn(sure, index=0) == "0: b 0.40" and shown(sure, smoothed=False)[0] == "b"
