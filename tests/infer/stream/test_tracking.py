"""IoU tracker: stable ids on a moving face, a new id for a new face, smoothing, track expiry."""

from __future__ import annotations

import numpy as np
import pytest

from eacfer.infer.detect.base import box_iou as iou
from eacfer.infer.results import FaceResult
from eacfer.infer.stream.tracking import IoUTracker
from inference_testutils import make_clip

NAMES = ("a", "b", "c")

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, predictor, face_rgb, exported_onnx, …


def _face(x: float, probs=(0.2, 0.3, 0.5)) -> FaceResult:
    p = np.asarray(probs, np.float32)
    k = int(np.argmax(p))
    return FaceResult((x, 10.0, 50.0, 50.0), 0.9, None, NAMES[k], k, p, NAMES)


def test_iou_values():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)


def test_ids_smoothing_and_expiry():
    tr = IoUTracker(iou_threshold=0.3, max_age=2, smoothing=0.5)
    f0 = tr.update([_face(0, (1, 0, 0))], 0)[0]
    assert f0.track_id == 1 and f0.smoothed_emotion == "a"
    f1 = tr.update([_face(5, (0, 0, 1))], 1)[0]  # moved a little: same track, EMA of the probabilities
    assert f1.track_id == 1
    np.testing.assert_allclose(f1.smoothed, [0.5, 0, 0.5])
    f2 = tr.update([_face(8, (0, 0, 1))], 2)[0]
    np.testing.assert_allclose(f2.smoothed, [0.25, 0, 0.75])
    assert f2.emotion == "c" and f2.smoothed_emotion == "c"
    # far away: a new track; the old one survives max_age missed frames, then closes
    assert tr.update([_face(300)], 3)[0].track_id == 2
    assert 1 in tr.tracks
    tr.update([], 4)
    tr.update([], 5)
    assert 1 not in tr.tracks and tr.num_tracks == 2
    assert tr.update([_face(8)], 6)[0].track_id == 3  # a closed track is never resumed
    s = tr.summary()
    assert s["1"]["frames"] == 3 and s["1"]["first_frame"] == 0 and s["1"]["last_frame"] == 2
    assert sum(s["1"]["emotion_shares"].values()) == pytest.approx(1.0)


def test_two_faces_keep_their_ids_when_order_changes():
    tr = IoUTracker()
    a, b = tr.update([_face(0), _face(200)], 0)
    assert (a.track_id, b.track_id) == (1, 2)
    b2, a2 = tr.update([_face(205), _face(3)], 1)  # detector order swapped
    assert (a2.track_id, b2.track_id) == (1, 2)


def test_no_smoothing_and_bad_settings():
    tr = IoUTracker(smoothing=1.0)
    tr.update([_face(0, (1, 0, 0))], 0)
    f = tr.update([_face(0, (0, 1, 0))], 1)[0]
    np.testing.assert_allclose(f.smoothed, [0, 1, 0])
    for kw in ({"smoothing": 0}, {"smoothing": 1.5}, {"iou_threshold": 1.0}, {"max_age": -1}):
        with pytest.raises(ValueError):
            IoUTracker(**kw)


def test_tracker_on_a_generated_clip(predictor, face_rgb, tmp_path):
    """One face glides across the frame (one id throughout); a second face appears at frame 12 (id 2)."""
    clip = make_clip(tmp_path / "two.mp4", face_rgb, frames=24, second_face_from=12)
    tr = IoUTracker(smoothing=0.5)
    ids_per_frame = []
    for r in predictor.stream(clip):
        tr.update(r.faces, r.index)
        ids_per_frame.append(sorted(f.track_id for f in r.faces))
    assert all(ids == [1] for ids in ids_per_frame[:12]), ids_per_frame
    assert all(ids == [1, 2] for ids in ids_per_frame[12:]), ids_per_frame
    assert tr.num_tracks == 2
    s = tr.summary()
    assert s["2"]["first_frame"] == 12 and s["1"]["frames"] == 24
