"""Hostile video sources: files that are not videos, cameras that fail, change resolution or vanish, and
variable frame rates. Outputs written so far are always complete and valid, with a clear reason.

A real variable-frame-rate file cannot be produced here (OpenCV's writers are constant-rate and neither
PyAV nor an ffmpeg binary is installed), so VFR is simulated with a capture whose timestamps are irregular,
which is exactly what OpenCV reports for such a file (``CAP_PROP_POS_MSEC`` per frame).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import hostile
from eacfer.infer.jobs.video import run_video
from eacfer.infer.stream.sources import open_source


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from eacfer.infer.predictor import Predictor
    from inference_testutils import save_random_model

    d = tmp_path_factory.mktemp("vid_model")
    model = save_random_model(d / "model.pt")
    # detector "none": every frame is one face crop; the source handling, not detection, is under test
    p = Predictor.from_checkpoint(model, device="cpu", detector="none", backend="torch")
    yield p
    p.close()


class FakeCapture:
    """A cv2.VideoCapture stand-in driven by a list of events: an array (a frame), None (read fails),
    an Exception instance (read raises). ``times`` gives CAP_PROP_POS_MSEC after each read."""

    def __init__(self, events, fps=30.0, times=None):
        self.events, self.fps, self.times = list(events), fps, times
        self.i, self.released, self.pos_ms = 0, False, 0.0

    def isOpened(self):
        return not self.released

    def read(self):
        if self.i >= len(self.events):
            return False, None
        ev = self.events[self.i]
        if self.times is not None and self.i < len(self.times):
            self.pos_ms = self.times[self.i]
        self.i += 1
        if isinstance(ev, Exception):
            raise ev
        if ev is None:
            return False, None
        return True, ev

    def get(self, prop):
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self.pos_ms
        return 0.0

    def set(self, prop, value):
        return True

    def release(self):
        self.released = True


def _frames(n, size=(64, 48), start=0):
    return [np.full((size[1], size[0], 3), (start + i) * 7 % 255, np.uint8) for i in range(n)]


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _count(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _clean(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mov", "", ".txt", ".ans"])
@pytest.mark.parametrize("content", [b"I am a file, not a video\n", b"hello", "é — ünïcødé text\n".encode(),
                                     b"\x00" * 4096])
def test_non_video_files_refused(tmp_path, suffix, content):
    bad = tmp_path / f"notes{suffix}"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=f"notes{suffix}: "):
        open_source(bad)


def test_random_bytes_and_an_image_refused(tmp_path):
    rnd = tmp_path / "random.mp4"
    rnd.write_bytes(np.random.default_rng(1).bytes(20000))
    img = tmp_path / "photo.mp4"
    img.write_bytes(hostile.FACE.read_bytes())  # a JPEG renamed .mp4 is still no video
    for bad in (rnd,):
        with pytest.raises(ValueError, match=bad.name):
            open_source(bad)
    # a still image may legitimately open as a one-frame stream; it must then deliver one valid frame
    try:
        src = open_source(img)
    except ValueError as e:
        assert "photo.mp4" in str(e)
    else:
        frames = list(src)
        src.close()
        assert len(frames) == 1 and frames[0][2].shape == (512, 512, 3)


# These fake cameras deliver frames as fast as they are read, faster than any model: the threaded pipeline
# (the default) drops, and counts, the frames it cannot analyse in time; the sequential one keeps them all.
PIPELINES = ["sequential", "threaded"]


def _analysed(s, total, pipeline):
    """Frames written: all of them (sequential), or what was not dropped (threaded); read = written + dropped."""
    assert s["frames_read"] == s["frames"] + s["dropped_frames"] == total
    assert s["frames"] == total if pipeline == "sequential" else 1 <= s["frames"] <= total
    return s["frames"]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_camera_vanishes_mid_stream(predictor, tmp_path, pipeline):
    """Frames, then the device raises, then reads fail forever: everything up to there is kept."""
    events = _frames(7) + [cv2.error("device unplugged")] + [None] * 50
    src = open_source(0, capture_factory=lambda t: FakeCapture(events), max_failures=5)
    s = run_video(predictor, src, tmp_path, progress=False, pipeline=pipeline)
    n = _analysed(s, 7, pipeline)
    assert "camera lost" in s["stopped"] and not s["ended_cleanly"]
    assert _count(tmp_path / "annotated.mp4") == n
    rows = _rows(tmp_path / "frames.csv")
    got = [int(r[0]) for r in rows[1:]]
    assert len(rows) == n + 1 and got == sorted(set(got)) and set(got) <= set(range(7))
    assert json.loads((tmp_path / "summary.json").read_text())["frames"] == n
    assert _clean(tmp_path)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_camera_with_hiccups_keeps_going(predictor, tmp_path, pipeline):
    """A few failed reads in a row (below max_failures) are a hiccup, not the end."""
    events = _frames(3) + [None, None] + _frames(3, start=3) + [None] * 20
    src = open_source(0, capture_factory=lambda t: FakeCapture(events), max_failures=5)
    s = run_video(predictor, src, tmp_path, progress=False, pipeline=pipeline)
    _analysed(s, 6, pipeline)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_camera_changes_resolution_and_format(predictor, tmp_path, pipeline):
    """Resolution switch, grayscale and BGRA frames mid-stream: every frame is written, sized as the first."""
    gray = np.full((48, 64), 90, np.uint8)
    bgra = np.full((48, 64, 4), 60, np.uint8)
    events = _frames(3) + _frames(3, size=(128, 96)) + [gray, bgra] + _frames(2, size=(32, 32)) + [None] * 20
    src = open_source(0, capture_factory=lambda t: FakeCapture(events), max_failures=3)
    s = run_video(predictor, src, tmp_path, progress=False, pipeline=pipeline)
    n = _analysed(s, 10, pipeline)
    assert _count(tmp_path / "annotated.mp4") == n
    cap = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (64, 48)
    cap.release()


def test_variable_frame_rate_timestamps(predictor, tmp_path):
    """Irregular timestamps (VFR) are reported as the source gives them; a decoder going backwards or
    giving none falls back to index / fps instead of producing nonsense."""
    times = [0.0, 33.0, 40.0, 140.0, 141.0, 400.0, 410.0, 420.0]
    src = open_source(0, capture_factory=lambda t: FakeCapture(_frames(8), times=times),
                      live=False)
    s = run_video(predictor, src, tmp_path, progress=False)
    assert s["frames"] == 8
    got = [float(r[1]) for r in _rows(tmp_path / "frames.csv")[1:]]
    assert got == pytest.approx([t / 1000 for t in times], abs=1e-3)
    # timestamps that stall or go backwards
    bad_times = [0.0, 50.0, 50.0, 20.0, 200.0]
    src = open_source(0, capture_factory=lambda t: FakeCapture(_frames(5), fps=10, times=bad_times), live=False)
    run_video(predictor, src, tmp_path / "b", progress=False)
    got = [float(r[1]) for r in _rows(tmp_path / "b" / "frames.csv")[1:]]
    assert got == sorted(got) and len(set(got)) == len(got), got


def test_orientation_auto_is_requested(tmp_path):
    """Rotation metadata: the source asks OpenCV to apply it (CAP_PROP_ORIENTATION_AUTO); the upright
    result on a real rotated MP4 is checked in test_video.py::test_rotated_phone_video_is_upright."""
    asked = {}

    class Spy(FakeCapture):
        def set(self, prop, value):
            asked[prop] = value
            return True

    open_source(0, capture_factory=lambda t: Spy(_frames(1)), live=False).close()
    assert asked.get(cv2.CAP_PROP_ORIENTATION_AUTO) == 1


def test_zero_frame_container_refused(predictor, tmp_path):
    zero = tmp_path / "zero.avi"
    w = cv2.VideoWriter(str(zero), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    w.release()
    with pytest.raises(ValueError, match="zero.avi: "):
        run_video(predictor, zero, tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "annotated.mp4").exists()
