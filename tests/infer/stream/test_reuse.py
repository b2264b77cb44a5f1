"""Label reuse (``--classify-every N``): each tracked face classified every N-th analysed frame, labels carried.

Written from the rule in eacfer/infer/stream/reuse.py: a new track is classified at once; a track's labels are never
older than N-1 analysed frames; tracks are staggered so the classifier's work is spread over frames; faces
without a track id are always classified; a carried face keeps this frame's box and gets the earlier
probabilities and ``label_frame``.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np
import pytest

from eacfer.infer.detect import Detection
from eacfer.infer.jobs.video import run_video
from eacfer.infer.results import FaceResult
from eacfer.infer.stream.reuse import LabelReuse, resolve_classify_every
from inference_testutils import make_clip

pytest_plugins = ["inference_fixtures"]

NAMES = ("a", "b", "c")


class CountingPredictor:
    """Classifies a face by its frame: probabilities encode (frame, track) so carried labels are traceable."""

    def __init__(self) -> None:
        self.calls: list[list[int | None]] = []
        self.frame = 0

    def classify_faces(self, rgb, dets, cam, timings):
        self.calls.append([d.track_id for d in dets])
        out = []
        for d in dets:
            p = np.array([self.frame, d.track_id or 0, 1.0], np.float32)
            out.append(FaceResult(box=d.box, score=d.score, keypoints=None, emotion="a", class_index=0,
                                  probabilities=p, class_names=NAMES, track_id=d.track_id))
        return out

    def carry_labels(self, det, earlier, cam, width, height):
        return FaceResult(box=det.box, score=det.score, keypoints=None, emotion=earlier.emotion,
                          class_index=earlier.class_index, probabilities=earlier.probabilities,
                          class_names=NAMES, track_id=det.track_id, label_frame=earlier.label_frame)


def _det(tid: int | None, x: float = 0.0) -> Detection:
    d = Detection((x, 10.0, 30.0, 30.0), 0.9, None)
    d.track_id = tid
    return d


RGB = np.zeros((100, 200, 3), np.uint8)


def _run(reuse: LabelReuse, frames: list[list[Detection]]):
    pred = CountingPredictor()
    results = []
    for i, dets in enumerate(frames):
        pred.frame = i
        results.append(reuse.classify(pred, RGB, dets, False, {}, index=i))
    return pred, results


def test_every_one_classifies_every_face_every_frame():
    pred, res = _run(LabelReuse(1), [[_det(1), _det(2)] for _ in range(5)])
    assert pred.calls == [[1, 2]] * 5
    assert all(f.label_frame == i for i, faces in enumerate(res) for f in faces)


@pytest.mark.parametrize("every", [2, 3])
def test_labels_are_never_older_than_every_minus_one_frames(every):
    n_frames, tracks = 24, [1, 2, 3, 4, 5]
    pred, res = _run(LabelReuse(every), [[_det(t, 20.0 * t) for t in tracks] for _ in range(n_frames)])
    for i, faces in enumerate(res):
        assert [f.track_id for f in faces] == tracks  # detector order kept
        for f in faces:
            assert i - (every - 1) <= f.label_frame <= i
            # the probabilities are the ones computed on label_frame, for this track
            assert f.probabilities[0] == f.label_frame and f.probabilities[1] == f.track_id
    # about 1/every of the faces reach the classifier after the first frame, spread over the frames
    later = [len(c) for c in pred.calls[1:]]
    assert sum(later) <= len(tracks) * (n_frames - 1) / every + len(tracks)
    assert max(later) < len(tracks)  # never all five on one frame and none on the next


def test_first_frame_and_new_tracks_are_classified_at_once():
    frames = [[_det(1)], [_det(1)], [_det(1), _det(7)], [_det(1), _det(7)]]
    pred, res = _run(LabelReuse(4), frames)
    assert pred.calls[0] == [1] and 7 in pred.calls[2]
    assert res[2][1].label_frame == 2


def test_untracked_faces_always_classified():
    pred, _ = _run(LabelReuse(3), [[_det(None), _det(None)] for _ in range(4)])
    assert pred.calls == [[None, None]] * 4


def test_carried_face_keeps_this_frames_box():
    frames = [[_det(2, x=0.0)], [_det(2, x=15.0)]]  # (1 + 2) % 2 == 1: frame 1 carries frame 0's labels
    pred, res = _run(LabelReuse(2), frames)
    assert pred.calls[1:] == [[]]
    assert res[1][0].box[0] == 15.0 and res[1][0].label_frame == 0


def test_a_track_that_was_missed_is_classified_again_and_cache_is_bounded():
    reuse = LabelReuse(5)
    frames = [[_det(1), _det(2)], [_det(1)], [_det(1), _det(2)]]
    pred, res = _run(reuse, frames)
    assert 2 in pred.calls[2]  # track 2 came back: its old labels are not reused
    _run(reuse, [[]])
    assert reuse._cache == {}  # nothing kept for tracks that are gone


def test_reset_and_stats_and_bad_value():
    reuse = LabelReuse(2)
    _run(reuse, [[_det(1)], [_det(1)], [_det(1)], [_det(1)]])
    s = reuse.stats()
    assert s["classify_every"] == 2 and s["faces_classified"] + s["faces_carried"] == 4
    assert s["faces_carried"] >= 1
    reuse.reset()
    pred, _ = _run(reuse, [[_det(1)]])
    assert pred.calls == [[1]]
    with pytest.raises(ValueError, match="classify every must be >= 1"):
        LabelReuse(0)


def _csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_run_video_classify_every_two(predictor, face_rgb, tmp_path):
    """End to end: frames.csv's label_frame and p_ columns trace back to a real classification."""
    clip = make_clip(tmp_path / "clip.mp4", face_rgb, frames=16)
    exact = run_video(predictor, clip, tmp_path / "one", progress=False, write_video=False, classify_every=1)
    s = run_video(predictor, clip, tmp_path / "two", progress=False, write_video=False, classify_every=2)
    rows1, rows2 = _csv(tmp_path / "one" / "frames.csv"), _csv(tmp_path / "two" / "frames.csv")
    assert all(r["label_frame"] == r["frame"] for r in rows1)
    by_frame = {(r["frame"], r["track"]): r for r in rows2}
    p_cols = [c for c in rows2[0] if c.startswith("p_")]
    carried = 0
    for r in rows2:
        if not r["track"]:
            continue
        lf, f = int(r["label_frame"]), int(r["frame"])
        assert f - 1 <= lf <= f
        if lf != f:
            carried += 1
            src = by_frame[(str(lf), r["track"])]
            assert [r[c] for c in p_cols] == [src[c] for c in p_cols]
    assert carried >= 4
    assert s["labels"]["classify_every"] == 2
    assert s["labels"]["faces_classified"] + s["labels"]["faces_carried"] == s["faces"]
    assert s["labels"]["faces_carried"] == carried
    assert exact["labels"]["faces_carried"] == 0
    on_disk = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert on_disk["labels"] == s["labels"]
    # the classified frames agree with the every-frame run (same crops, same model)
    exact_rows = {(r["frame"], r["track"]): r for r in rows1}
    for r in rows2:
        if r["track"] and r["label_frame"] == r["frame"]:
            e = exact_rows[(r["frame"], r["track"])]
            assert max(abs(float(r[c]) - float(e[c])) for c in p_cols) < 1e-4
    counts = defaultdict(int)
    for r in rows2:
        counts[r["frame"]] += 1
    assert set(counts.values()) == {1}


def test_auto_is_two_or_three_for_resnet50():
    assert resolve_classify_every("auto", "mobilenet_v2") == 2
    assert resolve_classify_every("auto", "resnet18") == 2
    assert resolve_classify_every("auto", "resnet50_msceleb") == 3
    assert resolve_classify_every("auto", "resnet50") == 3
    assert resolve_classify_every(4, "resnet50_msceleb") == 4 and resolve_classify_every("1", "x") == 1
    for bad in (0, "-2", "often", None):
        with pytest.raises(ValueError, match="classify every"):
            resolve_classify_every(bad, "mobilenet_v2")
    with pytest.raises(ValueError, match="resolve 'auto'"):
        LabelReuse("auto")


def test_run_video_auto_resolves_from_the_models_backbone(predictor, face_rgb, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", face_rgb, frames=6)
    s = run_video(predictor, clip, tmp_path / "auto", progress=False, write_video=False, classify_every="auto")
    assert predictor.classifier.info.backbone == "mobilenet_v2" and s["labels"]["classify_every"] == 2


def test_app_session_carries_labels_for_video_not_for_photos(model_pt, face_rgb, tmp_path):
    """The desktop app's live view carries labels too (ModelSession, in the background); photos are always
    classified."""
    import cv2

    from eacfer.infer.stream.sources import open_source
    from eacfer.ui.session import ModelSession
    from eacfer.ui.worker import FramePacket

    clip = make_clip(tmp_path / "clip.mp4", face_rgb, frames=30)  # slow enough for the face to keep its track
    with open_source(clip) as src:
        frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for _, _, f in src]
    session = ModelSession.load(model_pt, classify_every="auto")
    try:
        assert session.classify_every == 2
        label_frames = []
        for i, rgb in enumerate(frames):
            a = session.analyze(FramePacket(i, i, i / 25, rgb, 1, reset=i == 0), want_cam=False)
            label_frames += [(i, f.label_frame) for f in a.faces if f.track_id is not None]
        # the app classifies known faces in the background (reuse.py): labels never come from a later frame,
        # a new face is labelled on its own frame, the labels do get renewed, and never go back in time
        assert label_frames and all(lf is not None and lf <= i for i, lf in label_frames)
        assert label_frames[0] == (0, 0) and any(lf != i for i, lf in label_frames)
        lfs = [lf for _, lf in label_frames]
        assert lfs == sorted(lfs) and len(set(lfs)) >= 3
        for i in range(3):  # a photo list: each photo is classified on its own
            a = session.analyze(FramePacket(100 + i, i, 0.0, frames[0], 2, reset=True, still=True), want_cam=False)
            assert a.faces and all(f.label_frame is None for f in a.faces)
    finally:
        session.close()


# -- background labels (live sources) --------------------------------------------------------------------
class GatedPredictor(CountingPredictor):
    """Like CountingPredictor, but each background classification waits until the test lets one through."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.gate = threading.Semaphore(0)  # each release() lets exactly one background classification finish
        self.started = threading.Event()
        self.threads: list[str] = []
        self.pixels_seen: list[int] = []

    def classify_faces(self, rgb, dets, cam, timings):
        import threading

        if dets:
            self.threads.append(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread() and dets:
            frame = self.frame  # the frame whose pixels this job was given
            self.started.set()
            assert self.gate.acquire(timeout=10), "the test never opened the gate"
            self.pixels_seen.append(int(rgb[0, 0, 0]))  # after the caller went on (and drew on its frame)
            saved, self.frame = self.frame, frame
            try:
                return super().classify_faces(rgb, dets, cam, timings)
            finally:
                self.frame = saved
        return super().classify_faces(rgb, dets, cam, timings)


def test_background_labels_never_hold_a_frame_back_and_arrive_on_a_later_frame():
    """reuse.py: with background=True a due face that has labels is classified on a helper thread and its frame
    goes on with the earlier labels; a new face is classified before its frame goes on; the new labels are used
    from the frame after they are ready, labelled with the frame they were computed from."""
    reuse, pred = LabelReuse(2, background=True), GatedPredictor()

    def step(i, dets):  # noqa: ANN001, ANN202
        pred.frame = i
        return reuse.classify(pred, RGB, dets, False, {}, index=i)

    first = step(0, [_det(1)])  # a new track: classified at once, on this thread
    assert first[0].label_frame == 0 and pred.threads == ["MainThread"]
    # frame 1 is due for track 1 ((1 + 1) % 2 == 0): it goes to the helper, whose gate is shut, and the frame
    # comes back at once with frame 0's labels
    frame1 = np.zeros((100, 200, 3), np.uint8)
    pred.frame = 1
    assert reuse.classify(pred, frame1, [_det(1)], False, {}, index=1)[0].label_frame == 0
    frame1[:] = 255  # the caller draws on its frame at once: the helper must classify what it was given
    assert pred.started.wait(5), "no background classification was started"
    for j in (2, 3, 4):  # the helper is still blocked: no waiting, the old labels
        assert step(j, [_det(1)])[0].label_frame == 0
    assert reuse.stats()["faces_deferred"] == 3  # frames 2-4: due (labels 2+ frames old), the helper busy
    pred.gate.release()
    reuse.close()
    later = step(5, [_det(1)])  # due again: the next helper job starts (and waits at the gate)
    assert later[0].label_frame == 1 and later[0].probabilities[0] == 1  # the helper's labels, of frame 1
    assert pred.pixels_seen[0] == 0  # its own copy of frame 1's pixels
    pred.gate.release()
    reuse.close()
    assert pred.threads[0] == "MainThread" and set(pred.threads[1:]) == {"eacfer-labels"}
    s = reuse.stats()
    assert s["background"] is True and s["faces_classified"] == len(pred.threads)


def test_background_results_for_a_reset_source_are_dropped():
    reuse, pred = LabelReuse(2, background=True), GatedPredictor()
    pred.frame = 0
    reuse.classify(pred, RGB, [_det(1)], False, {}, index=0)
    i = 1
    while not pred.started.is_set() and i < 6:
        pred.frame = i
        reuse.classify(pred, RGB, [_det(1)], False, {}, index=i)
        i += 1
    assert pred.started.wait(5)
    reuse.reset()  # a new source while the helper works on the old one; its ids restart at 1
    pred.frame = 50
    faces = reuse.classify(pred, RGB, [_det(1)], False, {}, index=50)
    assert faces[0].label_frame == 50  # the track is new again: classified now
    pred.gate.release()
    reuse.close()  # the old source's result arrives now: it must not land on the new track 1
    pred.frame = 51
    assert reuse.classify(pred, RGB, [_det(1)], False, {}, index=51)[0].label_frame == 50
    pred.gate.release()  # the job frame 51 started
    reuse.close()


def test_background_is_off_for_every_one_and_files():
    assert LabelReuse(1, background=True).background is False  # nothing to carry: nothing to do in background
    assert LabelReuse(3).background is False


def test_background_classifies_faces_without_a_track_on_their_own_frame():
    """A face without a track id (a detector mode without the finder) has nothing to carry: classified now."""
    reuse, pred = LabelReuse(2, background=True), GatedPredictor()
    for i in range(4):
        pred.frame = i
        faces = reuse.classify(pred, RGB, [_det(None), _det(None, 50.0)], False, {}, index=i)
        assert [f.label_frame for f in faces] == [i, i]
    reuse.close()
    assert set(pred.threads) == {"MainThread"} and reuse.stats()["faces_classified"] == 8
