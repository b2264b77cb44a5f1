"""Video sources and writers, run_video outputs, camera simulation, Ctrl-C flush, broken/rotated videos."""

from __future__ import annotations

import csv
import json
import struct

import cv2
import numpy as np
import pytest

from eacfer.infer.jobs.video import VideoWriter, frames_csv_header, run_video
from eacfer.infer.stream.sources import open_source, parse_source
from inference_testutils import count_frames, make_clip
from sigint_support import needs_sigint

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, predictor, face_rgb, exported_onnx, …


@pytest.fixture(scope="module")
def clip(face_rgb, tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", face_rgb, frames=20)


def _no_temporaries(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_run_video_outputs(predictor, clip, tmp_path):
    s = run_video(predictor, clip, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    assert count_frames(out / "annotated.mp4") == count_frames(clip) == 20
    cap = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0) and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640
    cap.release()
    rows = _rows(out / "frames.csv")
    assert rows[0] == frames_csv_header(predictor.class_names)
    # issue #19: the detector score after the box (as in predictions.csv), smoothed probabilities at the end
    assert rows[0][:9] == ["frame", "time_s", "track", "x", "y", "w", "h", "score", "emotion"]
    assert rows[0][9] == "p_Surprise" and rows[0][16] == "smoothed_emotion" and rows[0][17] == "s_Surprise"
    assert [int(r[0]) for r in rows[1:]] == list(range(20)) and {r[2] for r in rows[1:]} == {"1"}
    assert float(rows[2][1]) == pytest.approx(0.04, abs=1e-3)
    assert all(abs(sum(float(v) for v in r[9:16]) - 1) < 1e-3 for r in rows[1:])
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(s))
    for key in ("frames", "frames_with_faces", "tracks", "fps", "stage_ms", "per_track"):
        assert key in summary
    assert summary["frames"] == 20 and summary["frames_with_faces"] == 20 and summary["tracks"] == 1
    assert summary["fps"] > 0 and {"decode", "detect", "classify", "draw", "write"} <= set(summary["stage_ms"])
    assert summary["per_track"]["1"]["frames"] == 20 and summary["ended_cleanly"]
    assert abs(sum(summary["per_track"]["1"]["emotion_shares"].values()) - 1) < 1e-3
    assert _no_temporaries(out)


def test_every_n_and_no_video(predictor, clip, tmp_path):
    s = run_video(predictor, clip, tmp_path, every=3, write_video=False, progress=False)
    assert s["frames"] == 20 and s["frames_processed"] == 7
    assert not (tmp_path / "annotated.mp4").exists()
    assert [int(r[0]) for r in _rows(tmp_path / "frames.csv")[1:]] == list(range(0, 20, 3))
    s = run_video(predictor, clip, tmp_path / "v", every=4, max_frames=10, progress=False)
    assert count_frames(tmp_path / "v" / "annotated.mp4") == 10  # every frame is written, analysed or not
    assert s["stopped"] == "reached --max-frames 10"


@pytest.mark.parametrize("pipeline", ["sequential", "threaded"])
def test_camera_simulated_with_a_file(predictor, clip, tmp_path, pipeline):
    src = open_source(0, capture_factory=lambda target: cv2.VideoCapture(str(clip)), max_failures=3)
    assert src.live and src.description == "camera 0" and src.frame_count is None
    s = run_video(predictor, src, tmp_path, progress=False, pipeline=pipeline)
    # the "camera" stops delivering frames when the file ends: a lost camera, reported, outputs complete
    assert "camera lost" in s["stopped"] and not s["ended_cleanly"]
    # this "camera" delivers frames faster than any model: the threaded pipeline drops (and counts) what it
    # cannot analyse in time; the sequential one analyses every frame
    n = s["frames"]
    assert s["frames_read"] == n + s["dropped_frames"] == 20
    assert n == 20 if pipeline == "sequential" else 1 <= n <= 20
    assert count_frames(tmp_path / "annotated.mp4") == n
    assert len(_rows(tmp_path / "frames.csv")) == n + 1 and _no_temporaries(tmp_path)
    assert s["live"] is True


def test_ctrl_c_flushes_valid_outputs(predictor, clip, tmp_path):
    def hook(r):
        if r.index == 5:
            raise KeyboardInterrupt

    s = run_video(predictor, clip, tmp_path, progress=False, on_frame=hook)
    assert s["interrupted"] and "Ctrl-C" in s["stopped"] and s["frames"] == 6
    assert count_frames(tmp_path / "annotated.mp4") == 6
    assert len(_rows(tmp_path / "frames.csv")) == 7
    assert json.loads((tmp_path / "summary.json").read_text())["interrupted"] is True
    assert _no_temporaries(tmp_path)


@needs_sigint
@pytest.mark.parametrize("pipeline", ["sequential", "threaded"])
def test_real_sigint_mid_frame_keeps_outputs_in_step(predictor, clip, tmp_path, monkeypatch, pipeline):
    """A real SIGINT arriving while frame 5 is being written (after it was counted and its CSV rows
    written, before its video frame): frame 5 is completed, then the run stops: counts, CSV and video agree.
    With the threaded pipeline the video is encoded on its own thread, a few frames behind the CSV: the
    frames already handed to it are still written, so the run stops a few frames later, still in step."""
    import os
    import signal

    real_write = VideoWriter.write

    def write(self, frame):
        if self.frames == 5:
            os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler at the next bytecode, i.e. right here
        real_write(self, frame)

    monkeypatch.setattr(VideoWriter, "write", write)
    s = run_video(predictor, clip, tmp_path, progress=False, pipeline=pipeline)
    n = s["frames"]
    assert s["interrupted"] and (n == 6 if pipeline == "sequential" else 6 <= n <= 20), s["stopped"]
    assert count_frames(tmp_path / "annotated.mp4") == n
    assert {int(r[0]) for r in _rows(tmp_path / "frames.csv")[1:]} == set(range(n))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert _no_temporaries(tmp_path)


def test_unexpected_error_still_finalises(predictor, clip, tmp_path):
    def hook(r):
        if r.index == 3:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        run_video(predictor, clip, tmp_path, progress=False, on_frame=hook)
    assert count_frames(tmp_path / "annotated.mp4") == 4
    assert "disk on fire" in json.loads((tmp_path / "summary.json").read_text())["stopped"]
    assert _no_temporaries(tmp_path)


def test_broken_video_files(predictor, clip, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 100)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # mp4v keeps its index at the end
    zero = tmp_path / "zero_frames.mp4"
    w = cv2.VideoWriter(str(zero), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    w.release()  # a container without a single frame
    for bad, msg in ((empty, "empty file"), (text, "text.mp4: "), (cut, "cut.mp4: "), (zero, "zero_frames.mp4: ")):
        with pytest.raises(ValueError, match=msg):
            run_video(predictor, bad, tmp_path / "o", progress=False)
    with pytest.raises(FileNotFoundError, match="no such video"):
        open_source(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="is a folder"):
        open_source(tmp_path)
    assert not (tmp_path / "o" / "annotated.mp4").exists()


def test_truncated_avi_reports_shortfall(predictor, tmp_path):
    path = tmp_path / "a.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 96))
    for i in range(40):
        w.write(np.full((96, 160, 3), i * 5, np.uint8))
    w.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # frames up to the cut stay decodable
    s = run_video(predictor, cut, tmp_path / "o", progress=False)
    assert 0 < s["frames"] < 40 and "truncated or corrupt" in s["stopped"]
    assert count_frames(tmp_path / "o" / "annotated.mp4") == s["frames"]


def _rotate_mp4(src, dst):
    """Copy an MP4 with a 90° rotation matrix in its track header (what phones write)."""
    b = bytearray(src.read_bytes())
    i = b.find(b"tkhd")
    version = b[i + 4]
    off = i + 8 + (32 if version == 1 else 20) + 8 + 8
    assert struct.unpack(">9i", bytes(b[off:off + 36]))[0] == 65536  # identity matrix found
    b[off:off + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    dst.write_bytes(bytes(b))
    return dst


def test_rotated_phone_video_is_upright(predictor, face_rgb, tmp_path):
    # the clip holds the face lying on its side; the metadata says "rotate 90°" to show it upright
    sideways = np.ascontiguousarray(np.rot90(face_rgb, k=1))
    raw = tmp_path / "raw.mp4"
    with VideoWriter(raw, 25, (512, 512)) as w:
        for _ in range(3):
            w.write(cv2.cvtColor(sideways, cv2.COLOR_RGB2BGR))
    rotated = _rotate_mp4(raw, tmp_path / "rot.mp4")
    plain_frames = list(predictor.stream(raw))
    upright_frames = list(predictor.stream(rotated))
    upright = [r.faces for r in upright_frames]
    assert all(len(f) == 1 for f in upright)  # face found in every frame, upright after rotation
    ref = predictor.predict(face_rgb).faces[0].box
    from eacfer.infer.detect.base import box_iou as iou

    assert iou(upright[0][0].box, ref) > 0.7

    def mad(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())

    # the decoded frames themselves: turned upright with the metadata, as stored (sideways) without it
    assert mad(upright_frames[0].image, face_rgb) < 20
    assert mad(plain_frames[0].image, sideways) < 20
    assert mad(plain_frames[0].image, face_rgb) > 2 * mad(upright_frames[0].image, face_rgb)


def test_video_writer_is_atomic(tmp_path):
    path = tmp_path / "v.mp4"
    w = VideoWriter(path, 10, (64, 48))
    w.write(np.zeros((48, 64, 3), np.uint8))
    w.write(np.zeros((100, 100, 3), np.uint8))  # other size: resized, not refused
    assert not path.exists()
    assert w.close() == path and count_frames(path) == 2
    empty = VideoWriter(tmp_path / "none.mp4", 10, (64, 48))
    assert empty.close() is None and not (tmp_path / "none.mp4").exists()
    aborted = VideoWriter(tmp_path / "ab.mp4", 10, (64, 48))
    aborted.write(np.zeros((48, 64, 3), np.uint8))
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_parse_source():
    assert parse_source("0") == ("camera", 0, True)
    assert parse_source(2) == ("camera", 2, True)
    assert parse_source("rtsp://cam/stream")[0::2] == ("url", True)
    assert parse_source("clip.mp4")[0] == "file"


def test_inference_demo_step(model_pt, tmp_path):
    from eacfer.demo import inference_report_lines, run_inference_demo

    d = run_inference_demo(model_pt, tmp_path, frames=8, progress=False)
    assert d["predict"]["faces"] == 1 and d["predict"]["emotion"] is not None
    assert d["video"]["frames"] == 8 and d["video"]["frames_with_faces"] == 8 and d["video"]["fps"] > 0
    assert count_frames(tmp_path / "video" / "annotated.mp4") == 8
    assert any(p.suffix == ".jpg" for p in (tmp_path / "predict" / "annotated").rglob("*"))
    assert "FPS end-to-end" in "\n".join(inference_report_lines(d))
