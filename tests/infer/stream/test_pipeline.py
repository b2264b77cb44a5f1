"""The threaded video pipeline (issue #11) and the richer outputs of ``eacfer video`` (issue #19).

Correctness only, never speed: frame order under jittery stages, every frame written, live sources drop
(and count) instead of queueing, bounded queues, errors from a stage, tracks for faces that enter and
leave, the new frames.csv columns and summary fields, and the browser codec.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import time

import cv2
import numpy as np
import pytest

from eacfer.infer.detect import Detection
from eacfer.infer.jobs.video import frames_csv_header, run_video
from eacfer.infer.jobs.writers import VideoWriter, pyav_available, resolve_codec
from eacfer.infer.stream.pipeline import LatencyStats, SequentialFrames, ThreadedFrames, open_frames
from eacfer.infer.stream.sources import open_source
from inference_testutils import count_frames, head_crop, make_clip

pytest_plugins = ["inference_fixtures"]


@pytest.fixture(scope="module")
def clip(face_rgb, tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("pclip") / "clip.mp4", face_rgb, frames=16, size=(320, 240))


@pytest.fixture(scope="module")
def fast_predictor(tmp_path_factory):
    """A predictor whose detector sees the whole frame as one face: cheap, so stages can be slowed at will."""
    from eacfer.infer.predictor import Predictor
    from inference_testutils import save_random_model

    model = save_random_model(tmp_path_factory.mktemp("pmodel") / "model.pt")
    p = Predictor.from_checkpoint(model, device="cpu", detector="none", backend="onnxruntime")
    yield p
    p.close()


class JitteryDetector:
    """A FrameDetector taking a random 0–``max_ms`` ms per frame; records the order it saw frames in."""

    def __init__(self, max_ms: float = 8.0, seed: int = 0, fail_at: int | None = None):
        self.rng = random.Random(seed)
        self.max_ms, self.fail_at, self.seen = max_ms, fail_at, []

    def detect(self, rgb, index):
        if index == self.fail_at:
            raise RuntimeError(f"detector broke on frame {index}")
        time.sleep(self.rng.uniform(0, self.max_ms) / 1000)
        self.seen.append(index)
        h, w = rgb.shape[:2]
        return [Detection((w * 0.25, h * 0.25, w * 0.5, h * 0.5), 0.9, None)]

    def reset(self):
        self.seen.clear()

    def settings(self):
        return {"name": "jittery"}


class SlowCamera:
    """A cv2.VideoCapture stand-in for a camera: ``n`` frames, ``period_s`` apart, then it stops."""

    def __init__(self, n: int, period_s: float, size=(64, 48)):
        self.n, self.period_s, self.size, self.i, self.released = n, period_s, size, 0, False

    def isOpened(self):
        return not self.released

    def read(self):
        if self.i >= self.n:
            return False, None
        time.sleep(self.period_s)
        self.i += 1
        return True, np.full((self.size[1], self.size[0], 3), self.i % 255, np.uint8)

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop, value):
        return True

    def release(self):
        self.released = True


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_frame_order_kept_with_jittery_stages(fast_predictor, clip):
    det = JitteryDetector(max_ms=10)
    with ThreadedFrames(fast_predictor, open_source(clip), detector=det, queue_size=2) as frames:
        got = [(r.index, r.image.shape, len(r.faces), r.latency_ms) for r in frames]
    assert [g[0] for g in got] == list(range(16)) and det.seen == list(range(16))
    assert all(g[1] == (240, 320, 3) and g[2] == 1 and g[3] is not None and g[3] >= 0 for g in got)
    assert frames.stats()["latency_ms"]["count"] == 16 and frames.stats()["dropped_frames"] == 0


def test_threaded_and_sequential_give_the_same_results(predictor, clip):
    """Same detections, same probabilities, same frames: the pipeline changes when, not what."""
    seq = list(predictor.stream(clip, pipeline="sequential", every=2))
    thr = list(predictor.stream(clip, pipeline="threaded", every=2))
    assert [r.index for r in thr] == [r.index for r in seq] == list(range(16))
    assert [r.processed for r in thr] == [i % 2 == 0 for i in range(16)]
    for a, b in zip(seq, thr, strict=True):
        assert len(a.faces) == len(b.faces) and np.array_equal(a.image, b.image)
        for fa, fb in zip(a.faces, b.faces, strict=True):
            assert fa.box == pytest.approx(fb.box) and fa.score == pytest.approx(fb.score)
            np.testing.assert_allclose(fa.probabilities, fb.probabilities, atol=1e-5)
    with pytest.raises(ValueError, match="unknown pipeline"):
        next(predictor.stream(clip, pipeline="parallel"))


@pytest.mark.parametrize("pipeline", ["threaded", "sequential"])
def test_every_frame_written_in_order(fast_predictor, clip, tmp_path, monkeypatch, pipeline):
    monkeypatch.setattr(fast_predictor, "frame_detector", lambda kind: JitteryDetector(max_ms=6, seed=1))
    s = run_video(fast_predictor, clip, tmp_path, progress=False, pipeline=pipeline, queue_size=2)
    assert s["pipeline"] == pipeline and s["frames"] == s["frames_read"] == 16 and s["dropped_frames"] == 0
    assert count_frames(tmp_path / "annotated.mp4") == 16
    assert [int(r["frame"]) for r in _rows(tmp_path / "frames.csv")] == list(range(16))
    assert s["detector_settings"] == {"name": "jittery"}
    assert {"decode", "detect", "classify", "draw", "write"} <= set(s["stage_utilisation"])


def test_live_source_drops_frames_instead_of_queueing(fast_predictor, tmp_path, monkeypatch):
    """A camera delivering a frame every 4 ms and a detector needing 25 ms: frames are dropped (counted),
    never queued; what was analysed is written, and counts, CSV and video agree."""
    monkeypatch.setattr(fast_predictor, "frame_detector", lambda kind: _Sleepy(0.025))
    src = open_source(0, capture_factory=lambda t: SlowCamera(60, 0.004), max_failures=1)
    s = run_video(fast_predictor, src, tmp_path, progress=False)
    assert s["live"] and s["frames_read"] == 60
    assert s["dropped_frames"] > 0 and s["frames"] + s["dropped_frames"] == 60
    assert count_frames(tmp_path / "annotated.mp4") == s["frames"]
    frames = [int(r["frame"]) for r in _rows(tmp_path / "frames.csv")]
    assert len(frames) == s["frames"] and frames == sorted(frames) and len(set(frames)) == len(frames)
    assert s["latency_ms"]["count"] == s["frames"] and s["latency_ms"]["p50"] <= s["latency_ms"]["max"]
    if pyav_available():  # H.264: the kept frames carry their capture times, so the video plays in real time
        import av

        times = [float(r["time_s"]) for r in _rows(tmp_path / "frames.csv")]
        with av.open(str(tmp_path / "annotated.mp4")) as c:
            pts = [float(f.time) for f in c.decode(video=0)]
        # the spacing is what makes it play in real time (the first frame's own time, a few ms after the camera
        # opened, may or may not survive as the stream's start offset)
        assert [p - pts[0] for p in pts] == pytest.approx([t - times[0] for t in times], abs=0.002)
    # the sequential pipeline analyses every camera frame (it has nowhere to drop them)
    src = open_source(0, capture_factory=lambda t: SlowCamera(20, 0.004), max_failures=1)
    s = run_video(fast_predictor, src, tmp_path / "seq", progress=False, pipeline="sequential")
    assert s["frames"] == 20 and s["dropped_frames"] == 0


class _OneTrackedFace:
    """A detection stage that finds one tracked face (id 1) in every frame."""

    def detect(self, rgb, index):
        d = Detection((8.0, 8.0, 40.0, 40.0), 0.9, None)
        d.track_id = 1
        return [d]

    def reset(self):
        pass

    def settings(self):
        return {"name": "one-face"}


def test_live_labels_are_computed_in_the_background(fast_predictor, clip, tmp_path, monkeypatch):
    """reuse.py: on a live source a known face's classification runs on a helper thread, so the frames behind
    it go on with the earlier labels; only the new face's first classification runs in the classify stage.
    A file is classified in the classify stage, frame by frame (its results never depend on timing)."""
    import threading

    threads: list[str] = []
    real = fast_predictor.classify_faces

    def slow_classify(rgb, dets, cam, timings):  # noqa: ANN001, ANN202
        if dets:
            threads.append(threading.current_thread().name)
            time.sleep(0.03)  # longer than the camera's frame interval
        return real(rgb, dets, cam, timings)

    monkeypatch.setattr(fast_predictor, "classify_faces", slow_classify)
    monkeypatch.setattr(fast_predictor, "frame_detector", lambda kind: _OneTrackedFace())
    src = open_source(0, capture_factory=lambda t: SlowCamera(30, 0.01), max_failures=1)
    s = run_video(fast_predictor, src, tmp_path / "live", progress=False, classify_every=2, write_video=False)
    assert s["labels"]["background"] is True and s["frames"] >= 5
    in_stage = [t for t in threads if t != "eacfer-labels"]
    assert len(in_stage) == 1 and threads.count("eacfer-labels") >= 1  # the new face, then the helper
    rows = _rows(tmp_path / "live" / "frames.csv")
    assert all(int(r["label_frame"]) <= int(r["frame"]) for r in rows)
    threads.clear()
    s = run_video(fast_predictor, clip, tmp_path / "file", progress=False, classify_every=2, write_video=False)
    assert s["labels"]["background"] is False and "eacfer-labels" not in threads
    assert len(threads) == s["labels"]["faces_classified"] > 1 and s["labels"]["faces_carried"] > 0


class _Sleepy:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def detect(self, rgb, index):
        time.sleep(self.seconds)
        return []

    def reset(self):
        pass

    def settings(self):
        return {"name": "sleepy"}


def test_queues_are_bounded(fast_predictor, clip):
    """A slow consumer: the stages wait instead of piling frames up (memory bound), files drop nothing."""
    with ThreadedFrames(fast_predictor, open_source(clip), detector=JitteryDetector(max_ms=0), queue_size=2) as fr:
        n = 0
        for _ in fr:
            time.sleep(0.02)
            n += 1
            assert all(q.qsize() <= 2 for q in fr.queues)
    # 3 queues of 2 + one frame held by each of the 3 stage threads, at most
    assert n == 16 and 1 <= fr.max_in_flight <= 3 * 2 + 3
    src = open_source(0, capture_factory=lambda t: SlowCamera(40, 0.002), max_failures=1)
    with ThreadedFrames(fast_predictor, src, detector=_Sleepy(0.01)) as live:
        assert all(q.maxsize == 1 for q in live.queues)  # live: one waiting frame per stage
        got = sum(1 for _ in live)
    assert live.max_in_flight <= 3 + 3 and got + live.dropped == 40
    seq = SequentialFrames(fast_predictor, open_source(clip), detector=JitteryDetector(max_ms=0))
    assert sum(1 for _ in seq) == 16 and seq.max_in_flight == 1


def test_background_writer_is_bounded_and_complete(tmp_path):
    from eacfer.infer.jobs.writers import BackgroundWriter

    def slow(bgr):
        time.sleep(0.005)
        return bgr

    bw = BackgroundWriter(VideoWriter(tmp_path / "b.mp4", 25, (64, 48), codec="mp4v"), slow, maxsize=3)
    for i in range(20):
        bw.submit(np.full((48, 64, 3), i * 10, np.uint8))
    assert bw.close() == tmp_path / "b.mp4"
    assert bw.max_queued <= 3 and count_frames(tmp_path / "b.mp4") == 20


def test_error_in_a_stage_finalises_outputs(fast_predictor, clip, tmp_path, monkeypatch):
    monkeypatch.setattr(fast_predictor, "frame_detector", lambda kind: JitteryDetector(max_ms=1, fail_at=5))
    with pytest.raises(RuntimeError, match="detector broke on frame 5"):
        run_video(fast_predictor, clip, tmp_path, progress=False)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["frames"] == 5 and "detector broke" in s["stopped"]
    assert count_frames(tmp_path / "annotated.mp4") == 5 and len(_rows(tmp_path / "frames.csv")) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _enter_leave_clip(path, face_rgb, n=30, leave_at=15):
    """A still face on the left for the whole clip; a second face on the right for frames < leave_at."""
    tile = cv2.resize(head_crop(face_rgb), (150, 162), interpolation=cv2.INTER_AREA)
    tile = cv2.cvtColor(tile, cv2.COLOR_RGB2BGR)
    with VideoWriter(path, 25, (480, 240), codec="mp4v") as w:
        for i in range(n):
            frame = np.full((240, 480, 3), 120, np.uint8)
            frame[40:202, 20:170] = tile
            if i < leave_at:
                frame[40:202, 300:450] = tile[:, ::-1]
            w.write(frame)
    return path


@pytest.fixture(params=["finder", "every-frame"])
def video_detection(request, predictor):
    """Both detection stages of videos: the tracking face finder (auto mode: short-range BlazeFace around
    each face, full scans on a schedule and on change) and a full-range scan of every frame."""
    old = predictor.detector_mode
    predictor.detector_mode = "auto" if request.param == "finder" else "full"
    yield request.param
    predictor.detector_mode = old


def test_face_entering_gets_a_track_and_leaving_ends_it(predictor, face_rgb, tmp_path, video_detection):
    entering = make_clip(tmp_path / "enter.mp4", face_rgb, frames=20, second_face_from=8)
    s = run_video(predictor, entering, tmp_path / "e", progress=False, write_video=False)
    assert s["tracks"] == 2 and s["detector_settings"]["strategy"].startswith(
        "tracking finder" if video_detection == "finder" else "full scan")
    # a new face gets a track within a few frames (the finder: by its next full scan, a change-triggered
    # one or the scheduled one every 10 frames, and after the sightings that confirm a new track)
    assert s["per_track"]["2"]["first_frame"] <= 8 + (5 if video_detection == "finder" else 1)
    leaving = _enter_leave_clip(tmp_path / "leave.mp4", face_rgb)
    s = run_video(predictor, leaving, tmp_path / "l", progress=False, write_video=False, max_age=3)
    rows = _rows(tmp_path / "l" / "frames.csv")
    right = {int(r["frame"]) for r in rows if r["x"] and float(r["x"]) > 240}
    assert right and max(right) <= 14  # nothing is reported where the face was after it left
    tracks_right = {r["track"] for r in rows if r["x"] and float(r["x"]) > 240}
    assert len(tracks_right) == 1
    (tid,) = tracks_right
    assert s["per_track"][tid]["last_frame"] <= 14
    (left,) = {r["track"] for r in rows if int(r["frame"]) == 0 and float(r["x"]) < 240}
    assert {r["track"] for r in rows if int(r["frame"]) >= 15} == {left} != {tid}  # the other face keeps its own


def test_finder_stage_finds_the_faces_full_scans_find(predictor, face_rgb, tmp_path):
    """The default video detection stage (the tracking finder) finds the faces a full-range scan of every
    frame finds, at the same places, with far fewer full scans."""
    clip = make_clip(tmp_path / "two.mp4", face_rgb, frames=20, second_face_from=0)
    old = predictor.detector_mode
    try:
        predictor.detector_mode = "full"
        every = list(predictor.stream(clip, pipeline="sequential"))
        predictor.detector_mode = "auto"
        src = open_source(clip)
        with SequentialFrames(predictor, src) as fr:
            found = list(fr)
            strategy = fr.stats()["detection"]["strategy"]
        src.close()
        stats = predictor.detection_stats()
    finally:
        predictor.detector_mode = old
    assert strategy.startswith("tracking finder")
    assert [len(r.faces) for r in found] == [len(r.faces) for r in every] == [2] * 20
    for a, b in zip(every, found, strict=True):
        for fa in a.faces:  # every face of the full scan has a matching box (same face) in the finder's result
            assert max(_box_iou(fa.box, fb.box) for fb in b.faces) > 0.6
    assert stats["full_scans"] < 10 and stats["roi_scans"] >= 2 * 10


def _box_iou(a, b):
    from eacfer.infer.detect.base import box_iou as iou

    return iou(a, b)


def test_new_columns_and_summary_fields(predictor, model_pt, clip, tmp_path):
    s = run_video(predictor, clip, tmp_path, progress=False, smoothing=0.5)
    rows = _rows(tmp_path / "frames.csv")
    names = predictor.class_names
    with open(tmp_path / "frames.csv", newline="") as fh:
        assert next(csv.reader(fh)) == frames_csv_header(names)
    prev = None
    for r in rows:
        assert 0.6 <= float(r["score"]) <= 1.0  # the detector's confidence, above its threshold
        p = np.array([float(r[f"p_{c}"]) for c in names])
        sm = np.array([float(r[f"s_{c}"]) for c in names])
        assert sm.sum() == pytest.approx(1.0, abs=1e-3)
        assert names[int(np.argmax(sm))] == r["smoothed_emotion"]
        if prev is None:
            np.testing.assert_allclose(sm, p, atol=1e-5)  # a track starts from its first probabilities
        else:  # EMA with weight 0.5: s_t = 0.5 p_t + 0.5 s_{t-1}
            np.testing.assert_allclose(sm, 0.5 * p + 0.5 * prev, atol=2e-5)
        prev = sm
    m = s["model"]
    assert m["name"] == model_pt.name and m["sha256"] == hashlib.sha256(model_pt.read_bytes()).hexdigest()
    assert m["backbone"] == "mobilenet_v2" and m["classes"] == list(names) and m["input_size"] == 64
    assert m["backend"] == "onnxruntime" and m["precision"] == "fp32"
    d = s["detector_settings"]
    assert d["name"] == "mediapipe" and d["mode"] == "finder" and d["score_threshold"] == 0.6  # auto: the tracking finder
    assert s["frames_read"] == s["frames"] == 16 and s["dropped_frames"] == 0
    lat = s["latency_ms"]
    assert lat["count"] == 16 and 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert json.loads((tmp_path / "summary.json").read_text())["model"] == m


def test_latency_percentiles_match_numpy():
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, 15.0, 5000)
    st = LatencyStats()
    for v in values:
        st.add(v)
    for q in (50, 90, 99):
        assert st.percentile(q) == pytest.approx(np.percentile(values, q, method="inverted_cdf"), abs=0.11)
    assert st.summary()["max"] == pytest.approx(values.max(), abs=0.05) and st.count == 5000
    assert LatencyStats().summary() == {} and LatencyStats().percentile(50) is None


def test_browser_codec_chosen_when_pyav_present(predictor, clip, tmp_path, monkeypatch):
    if not pyav_available():
        pytest.skip("PyAV with libx264 is not installed (pip install 'eacfer[video]')")
    import av

    s = run_video(predictor, clip, tmp_path / "h", progress=False, max_frames=6)
    assert s["video_codec"].startswith("H.264")
    with av.open(str(tmp_path / "h" / "annotated.mp4")) as c:
        st = c.streams.video[0]
        assert st.codec_context.name == "h264" and st.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in c.decode(video=0)) == 6
    # odd frame sizes are padded to even ones (yuv420p); the frame count is unchanged
    odd = VideoWriter(tmp_path / "odd.mp4", 25, (63, 47))
    for _ in range(3):
        odd.write(np.zeros((47, 63, 3), np.uint8))
    assert odd.close() and count_frames(tmp_path / "odd.mp4") == 3


def test_fallback_codec_without_pyav(predictor, clip, tmp_path, monkeypatch):
    import eacfer.infer.jobs.writers as writers

    monkeypatch.setattr(writers, "pyav_available", lambda: False)
    assert resolve_codec("auto") == "mp4v"
    with pytest.raises(ValueError, match="PyAV"):
        resolve_codec("h264")
    s = run_video(predictor, clip, tmp_path, progress=False, max_frames=4)
    assert s["video_codec"].startswith("MPEG-4") and count_frames(tmp_path / "annotated.mp4") == 4
    cap = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    cap.release()
    assert fourcc.lower() in ("mp4v", "fmp4")  # MPEG-4 Part 2 (FFmpeg reports its own tag)
    with pytest.raises(ValueError, match="unknown video codec"):
        resolve_codec("vp9")


def test_open_frames_names(fast_predictor, clip):
    src = open_source(clip)
    try:
        assert isinstance(open_frames(fast_predictor, src, "sequential", queue_size=3), SequentialFrames)
        with pytest.raises(ValueError, match="unknown pipeline"):
            open_frames(fast_predictor, src, "parallel")
    finally:
        src.close()


def test_app_live_view_runs_two_stages_in_order_and_counts_drops():
    """The desktop app's analysis: detection and classification on two threads; frames come out in capture
    order; frames the slow second stage had no time for are dropped and counted, never queued."""
    from eacfer.ui.stats import LatencyWindow
    from eacfer.ui.worker import FramePacket, InferenceThread, LatestSlot

    class TwoStage:
        def analyze(self, p, want_cam):  # pragma: no cover - the two-stage path is used instead
            raise AssertionError("a two-stage analyzer must not be run in one stage")

        def detect(self, p):
            time.sleep(0.003)
            return ("found", p.seq)

        def finish(self, p, found, want_cam):
            time.sleep(0.02)
            assert found == ("found", p.seq)
            return p.seq

    slot: LatestSlot[FramePacket] = LatestSlot()
    results: list[int] = []
    th = InferenceThread(slot, results.append, lambda msg: None, lambda p: ("raw", p.seq))
    th.set_analyzer(TwoStage())
    th.start()
    try:
        for seq in range(1, 41):
            slot.put(FramePacket(seq, seq, seq / 30, np.zeros((4, 4, 3), np.uint8), 1, live=True))
            time.sleep(0.004)
        deadline = time.monotonic() + 10
        while len(results) + slot.dropped + th.dropped < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        th.stop()
        th.join(30)
    assert not th.is_alive()
    assert len(results) + slot.dropped + th.dropped == 40 and th.dropped > 0
    assert results == sorted(results) and len(set(results)) == len(results)
    w = LatencyWindow(size=3)
    assert w.percentiles() is None
    for ms in (100.0, 10.0, 20.0, 30.0):
        w.add(ms)
    assert w.percentiles() == pytest.approx((20.0, 28.0))  # the oldest value left the window


def test_cli_pipeline_codec_and_detection_options(model_pt, clip, tmp_path, capsys):
    from eacfer.commands.cli import main

    out = tmp_path / "o"
    rc = main(["video", str(clip), "--checkpoint", str(model_pt), "--out", str(out), "--pipeline", "sequential",
               "--codec", "mp4v", "--detector-mode", "full", "--max-frames", "8"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["pipeline"] == "sequential" and s["video_codec"].startswith("MPEG-4")
    assert s["detector_settings"]["strategy"] == "full scan of every analysed frame" and s["frames"] == 8
    assert "latency (ms, frame read → labels ready): median" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # argparse refuses an unknown choice (exit 2)
        main(["video", str(clip), "--checkpoint", str(model_pt), "--out", str(out), "--pipeline", "fast"])
    assert e.value.code == 2 and "--pipeline" in capsys.readouterr().err
