"""IoU tracker (infer/stream/tracking.py) against its documented behaviour, independent of how it is implemented.

Documented: faces are matched to open tracks greedily, highest IoU first; a pair matches only when its IoU
reaches ``iou_threshold`` (the *minimum* IoU to continue a track); a track survives ``max_age`` processed
frames without a match and is closed at the next unmatched one, and every processed frame counts (also
frames in which other faces were matched); a closed track is never resumed, unmatched faces open new ids.
Boxes are ``(x, y, w, h)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from eacfer.infer.detect.base import box_iou as iou
from eacfer.infer.results import FaceResult
from eacfer.infer.stream.tracking import IoUTracker

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)

NAMES = ("a", "b", "c")
SIDE = 50.0


def face(x: float, y: float = 10.0, probs=(0.2, 0.3, 0.5), w: float = SIDE, h: float = SIDE) -> FaceResult:
    p = np.asarray(probs, np.float32)
    k = int(np.argmax(p))
    return FaceResult((float(x), float(y), float(w), float(h)), 0.9, None, NAMES[k], k, p, NAMES)


def ids(tracker: IoUTracker, faces: list[FaceResult], frame: int) -> list[int]:
    return [f.track_id for f in tracker.update(faces, frame)]


# ----------------------------------------------------------------------------------------- iou
def test_iou_of_xywh_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges: no overlap
    assert iou((0, 0, 10, 10), (0, 0, 10, 5)) == pytest.approx(0.5)
    assert iou((0, 0, 10, 10), (2, 3, 4, 4)) == pytest.approx(16 / 100)  # one inside the other
    assert iou((0, 0, 10, 10), (5, 5, 10, 10)) == pytest.approx(25 / 175)
    assert iou((5, 5, 10, 10), (0, 0, 10, 10)) == pytest.approx(25 / 175)  # symmetric
    assert iou((0, 0, 10, 10), (0, 20, 10, 10)) == 0.0  # apart vertically only
    assert iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0  # apart horizontally only
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


# ------------------------------------------------------------------------------ greedy matching
@pytest.mark.parametrize(("x", "expected"), [(20.0, 2), (10.0, 1)])
def test_one_face_overlapping_two_tracks_goes_to_the_higher_iou(x, expected):
    tr = IoUTracker(iou_threshold=0.3, max_age=5, smoothing=1.0)
    assert ids(tr, [face(0), face(30)], 0) == [1, 2]
    # x=20: IoU with track 1 is 30/70 ≈ 0.43, with track 2 40/60 ≈ 0.67 (both above the threshold)
    # x=10: IoU with track 1 is 40/60 ≈ 0.67, with track 2 30/70 ≈ 0.43
    assert ids(tr, [face(x)], 1) == [expected]
    assert tr.num_tracks == 2  # no new track opened


def test_two_faces_competing_for_one_track():
    tr = IoUTracker(iou_threshold=0.3, max_age=5, smoothing=1.0)
    ids(tr, [face(0)], 0)
    # IoU 35/65 ≈ 0.54 for the first face, 45/55 ≈ 0.82 for the second: the second wins, the first is new
    assert ids(tr, [face(15), face(5)], 1) == [2, 1]
    assert ids(tr, [face(5), face(15)], 2) == [1, 2]


def test_greedy_order_over_several_pairs():
    """Highest pair first, then the best remaining one (a global greedy, not per track or per face)."""
    tr = IoUTracker(iou_threshold=0.1, max_age=5, smoothing=1.0)
    assert ids(tr, [face(0), face(40)], 0) == [1, 2]
    # face p at 30: IoU(t1)=20/80=0.25, IoU(t2)=40/60≈0.67 ; face q at 12: IoU(t1)=38/62≈0.61, IoU(t2)=22/78≈0.28
    assert ids(tr, [face(12), face(30)], 1) == [1, 2]
    # tracks now at 12 and 30. s at 20: IoU(t1)=42/58≈0.72, IoU(t2)=40/60≈0.67; r at 42: IoU(t2)=38/62≈0.61,
    # IoU(t1)=20/80=0.25. Highest first: s→1, then r→2 (lowest first would give r→1, s→2).
    assert ids(tr, [face(20), face(42)], 2) == [1, 2]


# ------------------------------------------------------------------------------------- threshold
def test_iou_threshold_is_respected():
    tr = IoUTracker(iou_threshold=0.5, max_age=5, smoothing=1.0)
    ids(tr, [face(0)], 0)
    assert ids(tr, [face(20)], 1) == [2]  # IoU 30/70 ≈ 0.43 < 0.5: not the same face
    assert 1 in tr.tracks  # the old track waits (missed once)
    tr2 = IoUTracker(iou_threshold=0.5, max_age=5, smoothing=1.0)
    ids(tr2, [face(0)], 0)
    assert ids(tr2, [face(10)], 1) == [1]  # IoU 40/60 ≈ 0.67 ≥ 0.5
    tr3 = IoUTracker(iou_threshold=0.2, max_age=5, smoothing=1.0)
    ids(tr3, [face(0)], 0)
    assert ids(tr3, [face(20)], 1) == [1]  # the same move continues the track at a lower threshold


def test_iou_equal_to_the_threshold_continues_the_track():
    tr = IoUTracker(iou_threshold=0.5, max_age=5, smoothing=1.0)
    ids(tr, [face(0, h=SIDE)], 0)
    assert ids(tr, [face(0, h=SIDE / 2)], 1) == [1]  # IoU exactly 0.5: the minimum is reached


# ----------------------------------------------------------------------------------------- expiry
@pytest.mark.parametrize("max_age", [0, 1, 2, 4])
def test_track_survives_exactly_max_age_missed_frames(max_age):
    tr = IoUTracker(iou_threshold=0.3, max_age=max_age, smoothing=1.0)
    ids(tr, [face(0)], 0)
    for k in range(1, max_age + 1):
        ids(tr, [], k)
        assert 1 in tr.tracks, f"closed after {k} misses although max_age={max_age}"
    assert ids(tr, [face(2)], max_age + 1) == [1]  # still open: the face continues it


@pytest.mark.parametrize("max_age", [0, 1, 3])
def test_track_closes_at_the_miss_after_max_age(max_age):
    tr = IoUTracker(iou_threshold=0.3, max_age=max_age, smoothing=1.0)
    ids(tr, [face(0)], 0)
    for k in range(1, max_age + 2):
        ids(tr, [], k)
    assert 1 not in tr.tracks
    assert ids(tr, [face(2)], max_age + 2) == [2]  # a closed track is never resumed
    assert tr.num_tracks == 2


def test_every_processed_frame_counts_even_when_other_faces_are_matched():
    tr = IoUTracker(iou_threshold=0.3, max_age=2, smoothing=1.0)
    assert ids(tr, [face(0), face(300)], 0) == [1, 2]
    for k in (1, 2, 3):  # track 2 keeps being matched; track 1 misses three frames in a row
        assert ids(tr, [face(300)], k) == [2]
    assert 1 not in tr.tracks and 2 in tr.tracks
    assert sorted(ids(tr, [face(0), face(300)], 4)) == [2, 3]


def test_a_match_resets_the_miss_count():
    tr = IoUTracker(iou_threshold=0.3, max_age=1, smoothing=1.0)
    ids(tr, [face(0)], 0)
    ids(tr, [], 1)  # 1 miss
    assert ids(tr, [face(0)], 2) == [1]  # matched: count back to 0
    ids(tr, [], 3)  # 1 miss again, still alive
    assert ids(tr, [face(0)], 4) == [1]


# ---------------------------------------------------------------------------------- smoothing / stats
def test_exponential_moving_average_per_track():
    tr = IoUTracker(iou_threshold=0.3, max_age=3, smoothing=0.25)
    a = tr.update([face(0, probs=(1, 0, 0))], 0)[0]
    np.testing.assert_allclose(a.smoothed, [1, 0, 0])
    b = tr.update([face(1, probs=(0, 1, 0))], 1)[0]
    np.testing.assert_allclose(b.smoothed, [0.75, 0.25, 0], atol=1e-6)  # s ← α·p + (1−α)·s
    c = tr.update([face(2, probs=(0, 0, 1))], 2)[0]
    np.testing.assert_allclose(c.smoothed, [0.5625, 0.1875, 0.25], atol=1e-6)
    assert c.smoothed_emotion == "a"
    s = tr.summary()["1"]
    assert s == {"first_frame": 0, "last_frame": 2, "frames": 3, "dominant_emotion": "a",
                 "emotion_shares": {"a": 1.0}}


def test_summary_counts_frames_and_shares_per_track():
    tr = IoUTracker(iou_threshold=0.3, max_age=3, smoothing=1.0)
    tr.update([face(0, probs=(1, 0, 0)), face(300, probs=(0, 0, 1))], 5)
    tr.update([face(1, probs=(0, 1, 0))], 6)
    tr.update([face(2, probs=(0, 1, 0)), face(301, probs=(0, 0, 1))], 7)
    tr.update([face(3, probs=(0, 1, 0))], 8)
    s = tr.summary()
    assert set(s) == {"1", "2"}
    assert s["1"]["frames"] == 4 and s["1"]["first_frame"] == 5 and s["1"]["last_frame"] == 8
    assert s["1"]["emotion_shares"] == {"a": 0.25, "b": 0.75} and s["1"]["dominant_emotion"] == "b"
    assert s["2"]["frames"] == 2 and s["2"]["first_frame"] == 5 and s["2"]["last_frame"] == 7
    assert s["2"]["emotion_shares"] == {"c": 1.0} and s["2"]["dominant_emotion"] == "c"
    assert tr.num_tracks == 2


def test_new_faces_in_one_frame_get_increasing_ids_in_order():
    tr = IoUTracker()
    assert ids(tr, [face(0), face(100), face(200)], 0) == [1, 2, 3]
    assert ids(tr, [face(400)], 1) == [4]
    assert tr.num_tracks == 4


# ------------------------------------------------------------------------------- more iou / arguments
def test_iou_uses_width_and_height_of_each_box():
    assert iou((0, 0, 20, 10), (10, 0, 20, 10)) == pytest.approx(100 / 300)  # wide boxes
    assert iou((0, 0, 10, 20), (0, 10, 10, 20)) == pytest.approx(100 / 300)  # tall boxes
    assert iou((0, 0, 10, 10), (9.5, 0, 10, 10)) == pytest.approx(5 / 195)  # sub-pixel overlaps count
    assert iou((0, 0, 10, 10), (0, 9.5, 10, 10)) == pytest.approx(5 / 195)
    assert iou((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.5)) == pytest.approx(1.0)  # tiny boxes are boxes too


def test_argument_ranges_and_defaults():
    t = IoUTracker()
    assert (t.iou_threshold, t.max_age, t.smoothing) == (0.3, 10, 0.5)
    IoUTracker(iou_threshold=0.0, max_age=0, smoothing=1.0)  # the inclusive ends are allowed
    for kw, msg in (({"iou_threshold": 1.0}, r"iou_threshold must be in \[0, 1\), got 1.0"),
                    ({"iou_threshold": 1.5}, "iou_threshold"), ({"iou_threshold": -0.1}, "iou_threshold"),
                    ({"smoothing": 0.0}, r"smoothing must be in \(0, 1\], got 0.0"), ({"smoothing": 1.5}, "smoothing"),
                    ({"max_age": -1}, "max_age must be >= 0, got -1")):
        with pytest.raises(ValueError, match=msg):
            IoUTracker(**kw)


def test_unmatched_face_after_a_matched_one_gets_a_new_track():
    tr = IoUTracker(iou_threshold=0.3, max_age=5, smoothing=1.0)
    ids(tr, [face(0)], 0)
    assert ids(tr, [face(5), face(300), face(600)], 1) == [1, 2, 3]


def test_frame_index_defaults_to_zero_and_single_frame_tracks_are_summarised():
    tr = IoUTracker(smoothing=1.0)
    tr.update([face(0, probs=(0, 0, 1))])
    tr.update([face(300, probs=(1, 0, 0))], 4)
    s = tr.summary()
    assert s["1"] == {"first_frame": 0, "last_frame": 0, "frames": 1, "dominant_emotion": "c",
                      "emotion_shares": {"c": 1.0}}
    assert s["2"]["first_frame"] == 4 and s["2"]["last_frame"] == 4 and s["2"]["emotion_shares"] == {"a": 1.0}


def test_summary_shares_are_rounded_to_4_digits_and_dominant_is_the_most_frequent():
    tr = IoUTracker(iou_threshold=0.3, max_age=3, smoothing=1.0)
    for k, probs in enumerate([(1, 0, 0), (1, 0, 0), (0, 0, 1)]):
        tr.update([face(k, probs=probs)], k)
    s = tr.summary()["1"]
    assert s["emotion_shares"] == {"a": 0.6667, "c": 0.3333}
    assert s["dominant_emotion"] == "a"  # the most frequent, not the last in class order


def test_a_face_that_does_not_overlap_never_continues_a_track_even_at_threshold_zero():
    # IoU 0 means the boxes share no pixel: a different place, so a different face, whatever the threshold
    from eacfer.infer.stream.tracking import IoUTracker

    t = IoUTracker(iou_threshold=0.0, max_age=5)
    first = t.update([face(0.0, 0.0, w=10, h=10)], 0)[0].track_id
    second = t.update([face(50.0, 50.0, w=10, h=10)], 1)[0].track_id
    assert second != first


# ------------------------------------------------------------------- ids given by the face finder
# Documented (IoUTracker.update): with ``keep_given_ids`` a face that already carries a ``track_id`` keeps it
# and only gets smoothed; the others are matched by IoU as usual. Ids the tracker opens never collide with
# given ones; a given-id track unseen for more than ``max_age`` processed frames is closed like any other.


def given(tid: int, x: float, probs=(0.2, 0.3, 0.5)) -> FaceResult:
    f = face(x, probs=probs)
    f.track_id = tid
    return f


def test_given_ids_are_kept_and_smoothed():
    tr = IoUTracker(smoothing=0.25, keep_given_ids=True)
    a, b = given(7, 0.0, (0.6, 0.3, 0.1)), given(3, 300.0)
    assert ids(tr, [a, b], 0) == [7, 3]  # kept even though the boxes are far apart and the ids unordered
    np.testing.assert_allclose(a.smoothed, [0.6, 0.3, 0.1], rtol=1e-6)
    a2 = given(7, 400.0, (0.2, 0.2, 0.6))  # no overlap with the last box: the given id still wins
    assert ids(tr, [a2], 1) == [7]
    np.testing.assert_allclose(a2.smoothed, 0.25 * np.array([0.2, 0.2, 0.6]) + 0.75 * np.array([0.6, 0.3, 0.1]),
                               rtol=1e-6)
    assert a2.smoothed.dtype == np.float32
    s = tr.summary()
    assert s["7"]["first_frame"] == 0 and s["7"]["last_frame"] == 1 and s["7"]["frames"] == 2
    assert s["3"]["frames"] == 1 and s["3"]["last_frame"] == 0
    assert s["7"]["emotion_shares"] == {"a": 1.0}  # smoothed (0.5, 0.275, 0.225) in frame 1: still "a"
    assert tr.tracks[7].box == a2.box and tr.tracks[7].missed == 0


def test_opened_ids_do_not_collide_with_given_ones():
    tr = IoUTracker(keep_given_ids=True)
    assert ids(tr, [given(5, 0.0)], 0) == [5]
    assert ids(tr, [face(500.0)], 1) == [6]  # no given id in this frame: IoU matching opens the next free id
    assert ids(tr, [given(2, 900.0), face(505.0)], 2) == [2, 6]  # mixed: the given id kept, the other matched
    assert tr.keep_given_ids is True
    assert (tr.summary()["6"]["first_frame"], tr.summary()["6"]["last_frame"]) == (1, 2)  # frame 2 counted


def test_given_ids_are_ignored_by_default():
    tr = IoUTracker()
    assert ids(tr, [given(42, 0.0), given(42, 300.0)], 0) == [1, 2]  # matched by IoU, not taken from the face
    assert ids(tr, [given(9, 2.0)], 1) == [1]


def test_unseen_given_id_tracks_close_after_max_age_frames():
    tr = IoUTracker(max_age=2, keep_given_ids=True)
    ids(tr, [given(1, 0.0), given(2, 300.0)], 0)
    for frame in (1, 2):
        ids(tr, [given(1, 0.0)], frame)
        assert 2 in tr.tracks and tr.tracks[2].missed == frame
    ids(tr, [given(1, 0.0)], 3)
    assert 2 not in tr.tracks and 1 in tr.tracks and tr.tracks[1].missed == 0
    assert tr.summary()["2"]["last_frame"] == 0


def test_mixed_frames_age_each_track_once():
    """A frame with given ids and faces without one: every track not seen ages by exactly one frame, and a
    track seen by its id is not aged at all (found by the mutation work: mixed frames aged tracks twice)."""
    tr = IoUTracker(max_age=1, keep_given_ids=True)
    ids(tr, [given(1, 0.0), face(600.0)], 0)  # given id 1, and an IoU track for the other face
    other = next(t for t in tr.tracks if t != 1)
    ids(tr, [given(1, 0.0), face(300.0)], 1)  # the IoU track is missed once (a new track opens at x=300)
    assert tr.tracks[1].missed == 0 and tr.tracks[other].missed == 1  # max_age=1: it survives this miss
    ids(tr, [given(1, 0.0), face(300.0)], 2)
    assert other not in tr.tracks and 1 in tr.tracks  # closed after its second miss, not its first
    # max_age=0: a given-id track seen in every frame is never closed, and keeps its smoothing
    tr0 = IoUTracker(max_age=0, keep_given_ids=True, smoothing=0.5)
    ids(tr0, [given(4, 0.0, (1.0, 0.0, 0.0)), face(500.0)], 0)
    f = given(4, 0.0, (0.0, 1.0, 0.0))
    ids(tr0, [f, face(500.0)], 1)
    assert 4 in tr0.tracks and tr0.tracks[4].missed == 0
    np.testing.assert_allclose(f.smoothed, [0.5, 0.5, 0.0], atol=1e-6)
    # the face without an id never takes the id of a track seen by id in the same frame
    g = face(0.0)
    assert ids(tr0, [given(4, 0.0), g], 2)[1] != 4
    # ... and still continues its own IoU track listed after the track seen by id
    tr2 = IoUTracker(keep_given_ids=True)
    ids(tr2, [given(5, 0.0)], 0)
    (opened,) = ids(tr2, [face(505.0)], 1)
    assert ids(tr2, [given(5, 0.0), face(507.0)], 2) == [5, opened]
