"""The desktop app's non-Qt parts: Qt environment hygiene, sources, the frame queue, threads, statistics,
rendering and the command line's argument checks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from eacfer.ui.media import PhotoList, SourceError, parse_source
from eacfer.ui.qtenv import sanitize_qt_environment
from eacfer.ui.stats import RateMeter, TrackHistory
from eacfer.ui.worker import CaptureThread, FramePacket, InferenceThread, LatestSlot, merge_packets

ROOT = Path(__file__).resolve().parents[2]
ASTRONAUT = ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg"


def packet(seq: int, reset: bool = False, source_id: int = 1) -> FramePacket:
    return FramePacket(seq=seq, index=seq, time_s=seq / 10, image=np.zeros((4, 4, 3), np.uint8),
                       source_id=source_id, reset=reset)


def test_sanitize_drops_only_cv2_qt_variables() -> None:
    env = {
        "QT_QPA_PLATFORM_PLUGIN_PATH": "/venv/lib/python3.11/site-packages/cv2/qt/plugins",
        "QT_QPA_FONTDIR": "/usr/share/fonts/mine",  # set by the user: kept
        "QT_QPA_PLATFORM": "offscreen",
    }
    assert sanitize_qt_environment(env) == ["QT_QPA_PLATFORM_PLUGIN_PATH"]
    assert env == {"QT_QPA_FONTDIR": "/usr/share/fonts/mine", "QT_QPA_PLATFORM": "offscreen"}
    assert sanitize_qt_environment(env) == []


def test_parse_source_kinds(tmp_path: Path) -> None:
    assert parse_source("0").kind == "camera" and parse_source(" 2 ").target == "2"
    assert parse_source("rtsp://cam.local/stream").kind == "video"
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    assert parse_source(str(video)).kind == "video"
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("b.png", "a.JPG", "notes.txt"):
        (photos / name).write_bytes(b"x")
    spec = parse_source(str(photos))
    assert spec.kind == "photos" and [Path(p).name for p in spec.paths] == ["a.JPG", "b.png"]
    one = parse_source(str(photos / "b.png"))  # one photo: browse its folder, starting there
    assert one.kind == "photos" and one.target == str((photos / "b.png").resolve()) and len(one.paths) == 2
    assert parse_source([str(photos / "a.JPG"), str(photos / "b.png")]).paths[1].endswith("b.png")
    with pytest.raises(SourceError, match="file not found"):
        parse_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        parse_source(str(tmp_path / "empty"))


def test_photo_list_wraps_around() -> None:
    photos = PhotoList(["a", "b", "c"], start=2)
    assert photos.next() == "a" and photos.previous() == "c" and photos.previous() == "b"
    with pytest.raises(SourceError):
        PhotoList([])


def test_latest_slot_keeps_newest_and_counts_drops() -> None:
    slot: LatestSlot[FramePacket] = LatestSlot(merge=merge_packets)
    assert slot.put(packet(1, reset=True)) is False
    assert slot.put(packet(2)) is True  # 1 was never consumed: dropped
    got = slot.get(0)
    assert got.seq == 2 and got.reset  # the dropped frame's tracking reset is not lost
    assert slot.dropped == 1 and slot.get(0.01) is None
    # a consumer blocked in get() is woken by put()
    out = []
    t = threading.Thread(target=lambda: out.append(slot.get(5.0)))
    t.start()
    time.sleep(0.05)
    slot.put(packet(3))
    t.join(30)
    assert out and out[0].seq == 3


def wait_for(cond, timeout: float = 60.0) -> bool:  # noqa: ANN001
    """Poll ``cond`` until it holds (True) or ``timeout`` seconds pass (False); generous for loaded machines."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class FakeReader:
    """A CaptureReader stand-in: ``n`` frames, then the end (file) or a failure (live)."""

    def __init__(self, n: int, live: bool, fps: float = 200.0):
        self.n, self.live, self.fps = n, live, fps
        self.position = 0
        self.frame_count = 0 if live else n
        self.stop_reason = None
        self.closed = False

        class Spec:
            label = "camera 0" if live else "clip.mp4"
            target = "0" if live else "clip.mp4"

        self.spec = Spec()

    @property
    def seekable(self) -> bool:
        return not self.live

    def read(self):  # noqa: ANN201
        if self.position >= self.n:
            self.stop_reason = "camera 0: stopped delivering frames after 5 frames (camera lost?)" if self.live else "end of file"
            return None
        i = self.position
        self.position += 1
        return i, np.full((4, 4, 3), i, np.uint8)

    def seek(self, index: int) -> None:
        self.position = index

    def close(self) -> None:
        self.closed = True


def run_capture(reader: FakeReader, loop: bool = False, until: str = "disconnected", timeout: float = 60.0):  # noqa: ANN201
    events: list[tuple[str, object]] = []
    got = threading.Event()
    slot: LatestSlot[FramePacket] = LatestSlot()
    frames: list[int] = []

    def on_event(kind: str, payload: object) -> None:
        events.append((kind, payload))
        if kind == until:
            got.set()

    counter = iter(range(1, 10**6))
    thread = CaptureThread(lambda: reader, slot, 1, on_event, lambda: next(counter), loop=loop)
    collector_stop = threading.Event()

    def collect() -> None:
        while not collector_stop.is_set():
            p = slot.get(0.01)
            if p is not None:
                frames.append(p.index)

    c = threading.Thread(target=collect)
    c.start()
    thread.start()
    assert got.wait(timeout), events
    return thread, events, frames, collector_stop, c


def test_capture_thread_reports_a_disconnected_camera() -> None:
    reader = FakeReader(5, live=True)
    thread, events, frames, stop, c = run_capture(reader)
    thread.join(30)
    stop.set()
    c.join(30)
    assert events[0][0] == "opened"
    kind, msg = events[-1]
    assert kind == "disconnected" and "camera lost" in str(msg) and "pick it again" in str(msg)
    assert reader.closed and not thread.is_alive() and frames[-1] == 4


def test_capture_thread_end_of_file_pauses_and_seek_shows_one_frame() -> None:
    reader = FakeReader(6, live=False)
    thread, events, frames, stop, c = run_capture(reader, loop=False, until="ended")
    assert thread.paused and ("ended", "") in events
    # the collector takes the file's last frame (the newest in the slot is never dropped); a loaded machine
    # (two test workers) may need more than a fixed sleep for that
    assert wait_for(lambda: bool(frames) and frames[-1] == 5), frames
    n = len(frames)
    thread.seek(2)  # while paused: exactly the frame at the new position is delivered
    assert wait_for(lambda: len(frames) > n), frames
    time.sleep(0.2)  # and no other frame after it
    assert len(frames) == n + 1 and frames[-1] == 2
    thread.stop()
    thread.join(30)
    stop.set()
    c.join(30)
    assert not thread.is_alive() and reader.closed


def test_capture_thread_opener_failure_is_a_message() -> None:
    events = []

    def opener():  # noqa: ANN202
        raise SourceError("No camera at index 3: it is missing")

    t = CaptureThread(opener, LatestSlot(), 1, lambda k, p: events.append((k, p)), lambda: 1)
    t.start()
    t.join(30)
    assert events == [("error", "No camera at index 3: it is missing")]


def test_inference_thread_survives_analyzer_errors() -> None:
    slot: LatestSlot[FramePacket] = LatestSlot()
    results, errors = [], []

    class Flaky:
        def analyze(self, p: FramePacket, want_cam: bool):  # noqa: ANN201
            if p.seq == 1:
                raise RuntimeError("boom")
            return ("analysed", p.seq)

    th = InferenceThread(slot, results.append, errors.append, lambda p: ("raw", p.seq))
    th.set_analyzer(Flaky())
    th.start()
    for seq in (1, 2):
        slot.put(packet(seq))
        wait_for(lambda seq=seq: len(results) >= seq)
    th.set_analyzer(None)
    slot.put(packet(3))
    wait_for(lambda: len(results) >= 3)
    th.stop()
    th.join(30)
    assert results == [("raw", 1), ("analysed", 2), ("raw", 3)]
    assert len(errors) == 1 and "boom" in errors[0] and "frame 1" in errors[0]


def test_history_window_and_rate_meter() -> None:
    h = TrackHistory(window_s=2.0)
    for t in np.arange(0, 5, 0.5):
        h.add(7, float(t), [t / 5, 1 - t / 5])
    times, values = h.series(7)
    assert times[0] >= 4.5 - 2.0 and times[-1] == 4.5 and values.shape == (len(times), 2)
    h.add(7, 1.0, [0.5, 0.5])  # clock went back (seek): old curve dropped
    assert h.series(7)[0].tolist() == [1.0]
    assert h.series(99)[0].size == 0
    m = RateMeter(window_s=1.0)
    for t in np.arange(0, 2, 0.05):
        m.tick(float(t))
    assert abs(m.rate(1.95) - 20.0) < 0.5


def test_render_draws_boxes_and_selection() -> None:
    from eacfer.constants import RAFDB_CLASSES
    from eacfer.infer.results import FaceResult
    from eacfer.infer.viz import class_color
    from eacfer.ui.render import RenderOptions, face_at, largest_face, render

    def face(box, k):  # noqa: ANN001, ANN202
        p = np.full(7, 0.05, np.float32)
        p[k] = 0.7
        return FaceResult(box=box, score=0.9, keypoints=None, emotion=RAFDB_CLASSES[k], class_index=k,
                          probabilities=p, class_names=RAFDB_CLASSES)

    faces = [face((20.0, 40.0, 60.0, 60.0), 3), face((120.0, 40.0, 40.0, 40.0), 5)]
    img = np.full((160, 200, 3), 90, np.uint8)
    out = render(img, faces, RenderOptions(smoothed=True, selected=1))
    assert (img == 90).all()  # drawn on a copy
    assert tuple(out[70, 21]) == class_color(3) and tuple(out[60, 121]) == class_color(5)
    assert tuple(out[60, 117]) == (255, 255, 255)  # the selected face gets a white outline
    assert largest_face(faces) == 0 and largest_face([]) is None
    assert face_at(faces, 130, 50) == 1 and face_at(faces, 5, 5) is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ui", "--screenshot", "x.png"], "--screenshot needs --quit-after"),
        (["ui", "--quit-after", "-1"], "--quit-after must be >= 0"),
        (["ui", "--size", "10x10", "--quit-after", "0"], "too small"),
        (["ui", "--size", "big", "--quit-after", "0"], "WIDTHxHEIGHT"),
    ],
)
def test_cli_argument_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from eacfer.commands.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_ui_package_imports_without_qt_and_missing_pyside_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    code = "import sys, eacfer.ui, eacfer.commands.ui, eacfer.ui.media, eacfer.ui.worker; print('PySide6' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
    from eacfer.commands.cli import main

    monkeypatch.setitem(sys.modules, "PySide6", None)  # as if the 'ui' extra were not installed
    assert main(["ui", "--quit-after", "0"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'eacfer[ui]'" in err and "Traceback" not in err


def test_list_cameras_probes_device_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    from eacfer.ui import media

    opened = []

    class FakeCapture:
        def __init__(self, index: int) -> None:
            opened.append(index)
            self.index = index

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV API
            return self.index != 4

        def read(self):  # noqa: ANN201
            return (self.index != 1), None  # /dev/video1: a metadata node that opens but gives no image

        def release(self) -> None:
            pass

    monkeypatch.setattr(media.sys, "platform", "linux")
    monkeypatch.setattr(media.glob, "glob", lambda pattern: ["/dev/video0", "/dev/video1", "/dev/video2",
                                                             "/dev/video4", "/dev/video-meta"])
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    assert media.list_cameras() == [0, 2]
    assert opened == [0, 1, 2, 4]


@pytest.mark.skipif(__import__("sys").version_info >= (3, 12), reason="None is immortal on Python >= 3.12")
def test_none_refcount_guard_detects_and_neutralises_lost_references() -> None:
    """PySide6 6.12.0 on Python 3.11 loses a reference to None per QPainter call; the app detects and pins it."""
    import ctypes
    import sys

    from eacfer.ui import qtenv

    lost = 40

    def leaky_probe() -> None:  # what the buggy binding does: hand out None without owning a reference
        for _ in range(lost):
            ctypes.pythonapi.Py_DecRef(ctypes.py_object(None))

    try:
        assert qtenv.none_refcount_leaks(leaky_probe)
        assert not qtenv.none_refcount_leaks(lambda: None)
        before = sys.getrefcount(None)
        qtenv.protect_none()
        assert abs(sys.getrefcount(None) - before - (1 << 40)) < 1000
    finally:
        ctypes.c_ssize_t.from_address(id(None)).value += lost  # give back what the test took
        if sys.getrefcount(None) > 1 << 40:
            ctypes.c_ssize_t.from_address(id(None)).value -= 1 << 40
