"""The desktop app driven offscreen: a generated clip of a real face (the NASA astronaut portrait) as the
live source, a random-weight model, the real window, detector and classifier."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the desktop app needs the 'ui' extra (PySide6)")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[2]
ASTRONAUT = ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg"


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Keep the .pt → ONNX export cache out of the user's home."""
    path = tmp_path_factory.mktemp("onnx-cache")
    old = os.environ.get("EACFER_CACHE_DIR")
    os.environ["EACFER_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("EACFER_CACHE_DIR", None)
    else:
        os.environ["EACFER_CACHE_DIR"] = old


def _save_random_model(path: Path, backbone: str) -> Path:
    import torch

    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo
    from eacfer.models.factory import create_model

    torch.manual_seed(0)
    save_model(path, create_model(backbone), ModelInfo(backbone, list(RAFDB_CLASSES), 64, list(IMAGENET_MEAN),
                                                       list(IMAGENET_STD)))
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    return _save_random_model(tmp_path_factory.mktemp("model") / "model.pt", "mobilenet_v2")


def two_face_frame(i: int = 0) -> np.ndarray:
    """640×360 BGR frame: a large astronaut face on the left, a smaller mirrored one on the right."""
    import cv2

    img = cv2.imread(str(ASTRONAUT))
    assert img is not None, ASTRONAUT
    crop = img[10:250, 110:350]
    frame = np.full((360, 640, 3), 40, np.uint8)
    frame[15:345, 10:340] = cv2.resize(crop, (330, 330))
    dx = i % 6  # a little motion, so consecutive frames differ
    frame[60:320, 364 + dx:624 + dx] = cv2.resize(cv2.flip(crop, 1), (260, 260))
    return frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    path = tmp_path_factory.mktemp("clip") / "astronauts.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (640, 360))
    for i in range(24):
        writer.write(two_face_frame(i))
    writer.release()
    assert path.stat().st_size > 0
    return path


@pytest.fixture(scope="module")
def qapp():
    from eacfer.ui.qtenv import sanitize_qt_environment

    sanitize_qt_environment()
    from PySide6.QtWidgets import QApplication

    from eacfer.ui.qtenv import guard_pyside_none_bug

    app = QApplication.instance() or QApplication(["eacfer-test"])
    guard_pyside_none_bug()  # as run_app does
    return app


def wait_until(cond, timeout: float = 30.0, what: str = "condition", window=None) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        QApplication.processEvents()
        if cond():
            return
        time.sleep(0.01)
    state = ""
    if window is not None:  # what the user would see, to make a failure under load diagnosable
        a = window.last_analysis
        state = (f"; banner={window.banner_text()!r}; model_loading={window.model_loading}; "
                 f"faces={None if a is None else len(a.faces)}; messages={list(window.messages)[-5:]}")
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{state}")


@pytest.fixture
def make_window(qapp, tmp_path: Path):  # noqa: ANN001
    """Build real MainWindows with a temporary settings file; shut them down afterwards."""
    from PySide6.QtCore import QSettings

    from eacfer.ui.window import MainWindow, WindowOptions

    windows = []
    settings_file = tmp_path / "settings.ini"

    def make(**kw):  # noqa: ANN003, ANN202
        kw.setdefault("output_dir", str(tmp_path / "out"))
        kw.setdefault("probe_cameras", False)
        win = MainWindow(QSettings(str(settings_file), QSettings.Format.IniFormat), WindowOptions(**kw))
        win.resize(1100, 720)
        win.show()
        windows.append(win)
        return win

    make.settings_file = settings_file
    yield make
    for win in windows:
        win.close()
        win.shutdown()


def window_pixels(win) -> np.ndarray:  # noqa: ANN001
    """The whole window as an H×W×3 RGB array (what --screenshot saves)."""
    from PySide6.QtGui import QImage

    img = win.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def to_window(win, x: float, y: float) -> tuple[int, int]:  # noqa: ANN001
    from PySide6.QtCore import QPoint

    p = win.view.image_to_widget(x, y)
    q = win.view.mapTo(win, QPoint(round(p.x()), round(p.y())))
    return q.x(), q.y()


def playing_with_faces(win, n: int = 2) -> bool:  # noqa: ANN001
    a = win.last_analysis
    return a is not None and len(a.faces) >= n and win.session is not None


# -- the live window ------------------------------------------------------------------------------------
def _drained(win) -> bool:
    """No frame in flight: nothing analysed for 0.3 s and no frame waiting for the inference thread."""
    n = win.inference.processed
    time.sleep(0.3)
    wait_until(lambda: True, timeout=0.1)
    return win.inference.processed == n and win.frame_slot.get(0) is None


def test_video_frames_advance_boxes_drawn_and_panel_follows_selection(make_window, model_file, clip) -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from eacfer.infer.viz import class_color
    from eacfer.ui.session import face_label, face_probabilities

    win = make_window(checkpoint=str(model_file), source=str(clip))
    wait_until(lambda: playing_with_faces(win), what="two faces on screen")
    seen = set()
    wait_until(lambda: seen.add(win.last_analysis.packet.seq) or len(seen) >= 6, what="frames advancing")
    assert win.frames_displayed >= 6
    assert "model" not in win._notes and win.banner_text() == ""

    # default selection: the largest face, shown in the panel
    a = win.last_analysis
    sel = win.selected_face_index()
    areas = [f.box[2] * f.box[3] for f in a.faces]
    assert sel == int(np.argmax(areas))
    face = a.faces[sel]
    assert face.track_id is not None and face.smoothed is not None
    assert np.allclose(win.panel.bars.probabilities, face_probabilities(face, True))
    name, conf = face_label(face, True)
    assert name in win.panel.face_label.text() and f"{100 * conf:.0f}%" in win.panel.face_label.text()
    assert len(win.panel.history.times) >= 1
    import re

    wait_until(lambda: re.search(r"[1-9][0-9.]* FPS.*detect \d+\.\d ms.*classify \d+\.\d ms.*draw \d+\.\d ms",
                                 win.panel.perf_label.text()), what="live FPS and stage times")

    # pixel checks on the window at every predicted box: the box edge and the label are drawn there. Paused
    # and drained first, so the analysis and the pixels are of one frame (a playing clip moves the faces
    # between reading last_analysis and grabbing the window: that made this check flaky)
    QTest.keyClick(win, Qt.Key.Key_Space)
    wait_until(lambda: _drained(win), what="the pipeline to drain before the pixel checks")
    a = win.last_analysis
    pixels = window_pixels(win)
    for f in a.faces:
        x, y, w, h = f.box
        color = np.array(class_color(list(f.class_names).index(face_label(f, True)[0])))
        # the renderer draws the box on whole pixels (viz._box rounds it): sample the centre of the
        # pixel column/row it drew (a detector's fractional box, + 1.0, could land one pixel beside a thin line)
        ex, ey = round(x) + 0.5, round(y) + 0.5
        edge = [to_window(win, x + w * t, ey) for t in np.linspace(0.55, 0.9, 8)]
        edge += [to_window(win, ex, y + h * t) for t in np.linspace(0.2, 0.9, 8)]
        hits = [np.abs(pixels[py, px].astype(int) - color).max() <= 40 for px, py in edge]
        assert sum(hits) >= 13, f"box edge not drawn at {f.box}: {[pixels[py, px] for px, py in edge]}"
        x0, y0 = to_window(win, x, y - 14)
        x1, y1 = to_window(win, x + w * 0.45, y - 4)
        label = pixels[y0:y1, x0:x1].reshape(-1, 3).astype(int)
        assert (np.abs(label - color).max(axis=1) <= 40).mean() > 0.4, "label background missing"
    QTest.keyClick(win, Qt.Key.Key_Space)  # play again
    assert not win.capture.paused

    # click the other (smaller) face: the panel switches to it and stays on its track
    other = 1 - sel
    ox, oy, ow, oh = a.faces[other].box
    track = a.faces[other].track_id
    wx, wy = win.view.image_to_widget(ox + ow / 2, oy + oh / 2).toTuple()
    QTest.mouseClick(win.view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(round(wx), round(wy)))
    assert win.selected_track == track
    wait_until(lambda: win.last_analysis.packet.seq != a.packet.seq and playing_with_faces(win), what="next frame")
    b = win.last_analysis
    i = win.selected_face_index()
    # the selection stays on the clicked track (not the default largest face, whose track it was not),
    # whatever the two faces' sizes are by now (the clip scales them)
    assert b.faces[i].track_id == track != a.faces[sel].track_id
    assert np.allclose(win.panel.bars.probabilities, face_probabilities(b.faces[i], True))

    # raw vs smoothed (T) and the attention map (C)
    QTest.keyClick(win, Qt.Key.Key_T)
    assert not win.act_smoothed.isChecked() and "(raw)" in win.panel.face_label.text()
    assert np.allclose(win.panel.bars.probabilities, win.last_analysis.faces[win.selected_face_index()].probabilities)
    QTest.keyClick(win, Qt.Key.Key_C)
    assert win.inference.want_cam
    wait_until(lambda: playing_with_faces(win) and all(f.cam is not None for f in win.last_analysis.faces),
               what="faces with attention maps")

    # pause (Space) stops the frames (once the frame already in flight is shown); play resumes them
    QTest.keyClick(win, Qt.Key.Key_Space)
    assert win.capture.paused

    wait_until(lambda: _drained(win), what="the pipeline to drain after pausing")
    seq = win.last_analysis.packet.seq
    time.sleep(0.5)
    wait_until(lambda: True, timeout=0.1)
    assert win.last_analysis.packet.seq == seq
    # seeking while paused shows the frame there: the slider, then → (5 s ahead, clamped to the last frame)
    win.slider.setValue(5)
    wait_until(lambda: win.last_analysis.packet.index == 5, what="the frame at the slider position")
    QTest.keyClick(win, Qt.Key.Key_Right)
    wait_until(lambda: win.last_analysis.packet.index == 23, what="the frame 5 s ahead (last frame)")
    seq = win.last_analysis.packet.seq
    QTest.keyClick(win, Qt.Key.Key_Space)
    wait_until(lambda: win.last_analysis.packet.seq != seq, what="playback resumed")


def test_snapshot_and_record_write_files(make_window, model_file, clip, tmp_path: Path) -> None:
    import cv2
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    win = make_window(checkpoint=str(model_file), source=str(clip))
    wait_until(lambda: playing_with_faces(win), what="faces on screen")

    QTest.keyClick(win, Qt.Key.Key_S)
    assert win.last_snapshot is not None
    png, table = win.last_snapshot
    assert Path(png).parent == tmp_path / "out"
    saved = cv2.imread(str(png))
    assert saved is not None and saved.shape == (360, 640, 3)
    rows = list(csv.DictReader(open(table, encoding="utf-8")))
    faces = win.last_analysis.faces
    assert len(rows) == len(faces) >= 2
    assert {"source", "frame", "time_s", "track", "x", "y", "w", "h", "emotion", "p_Happiness",
            "smoothed_emotion"} <= set(rows[0])
    assert sorted(r["emotion"] for r in rows) == sorted(f.emotion for f in faces)
    assert abs(sum(float(rows[0][f"p_{c}"]) for c in faces[0].class_names) - 1.0) < 1e-3

    QTest.keyClick(win, Qt.Key.Key_R)
    assert win.recorder is not None and win.act_record.isChecked()
    wait_until(lambda: win.recorder is not None and win.recorder.frames >= 8, what="recorded frames")
    QTest.keyClick(win, Qt.Key.Key_R)
    assert win.recorder is None and not win.act_record.isChecked()
    videos = list((tmp_path / "out").glob("recording_*.mp4"))
    tables = list((tmp_path / "out").glob("recording_*.csv"))
    assert len(videos) == 1 and len(tables) == 1
    cap = cv2.VideoCapture(str(videos[0]))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n >= 8
    rows = list(csv.DictReader(open(tables[0], encoding="utf-8")))
    assert len({r["frame"] for r in rows}) >= 4 and all(r["track"] for r in rows)
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_model_switching_onnx_and_broken_file(make_window, model_file, clip, tmp_path: Path) -> None:
    from eacfer.export import export_onnx

    onnx = tmp_path / "other.onnx"
    export_onnx(_save_random_model(tmp_path / "other.pt", "resnet18"), onnx, with_cams=True)
    win = make_window(checkpoint=str(model_file), source=str(clip))
    wait_until(lambda: playing_with_faces(win), what="faces with the first model")
    assert "mobilenet_v2" in win.panel.model_label.text()

    win.load_model(str(onnx))
    wait_until(lambda: win.session is not None and win.session.path == str(onnx), what="the ONNX model")
    summary = win.session.summary
    assert (summary.backbone, summary.backend, summary.device, summary.input_size) == ("resnet18", "onnxruntime", "CPU", 64)
    assert "resnet18" in win.panel.model_label.text() and "onnxruntime" in win.panel.model_label.text()
    wait_until(lambda: playing_with_faces(win) and win.last_analysis.model_path == str(onnx), what="frames from it")

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"this is not a model")
    win.load_model(str(broken))
    wait_until(lambda: not win.model_loading, what="the broken model to fail")
    assert win.session.path == str(onnx)  # the working model stays
    assert "Could not load the model" in win.banner_text() and "broken.pt" in win.banner_text()
    from PySide6.QtCore import QSettings

    assert QSettings(str(make_window.settings_file), QSettings.Format.IniFormat).value("model/path") == str(onnx)


def test_no_model_of_ones_own_uses_the_starter_model_and_says_what_it_is(make_window, clip, cache_dir) -> None:
    """Issue 31: with no model given or remembered, the app runs the bundled starter model and its banner says
    it is the FER2013 mini-Xception, not an EAC/RAF-DB model."""
    from eacfer.infer.runtime.starter import starter_runtime_path

    win = make_window(source=str(clip))
    wait_until(lambda: win.session is not None and playing_with_faces(win), what="frames from the starter model")
    assert win.session.path == str(starter_runtime_path()) and win.session.summary.backbone == "mini_xception"
    text = win.banner_text()
    assert "starter model" in text and "FER2013" in text and "not an EAC model" in text
    assert "No model loaded" not in text
    assert win.last_analysis.faces[0].emotion in win.session.summary.class_names


def test_no_camera_and_undecodable_files_give_messages(make_window, model_file, tmp_path: Path) -> None:
    from PySide6.QtCore import Qt

    win = make_window(checkpoint=str(model_file), source="9")
    wait_until(lambda: "No camera at index 9" in win.banner_text(), what="the no-camera message", window=win)
    # the camera picker: what the probe found is listed; picking a camera that is gone is a message too
    win._on_cameras_listed([0, 7])
    assert [win.camera_combo.itemText(i) for i in range(win.camera_combo.count())] == [
        "Choose a camera…", "Camera 0", "Camera 7"]
    win.camera_combo.activated.emit(2)
    wait_until(lambda: "No camera at index 7" in win.banner_text(), what="the message for camera 7", window=win)
    win._on_cameras_listed([])
    win.camera_combo.activated.emit(0)
    assert "No camera found" in win.banner_text()

    broken_video = tmp_path / "broken.mp4"
    broken_video.write_bytes(os.urandom(4096))
    win.open_source(str(broken_video))
    wait_until(lambda: "Cannot play" in win.banner_text(), what="the undecodable-video message", window=win)
    assert "broken.mp4" in win.banner_text()

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (photos / "b_face.jpg").write_bytes(ASTRONAUT.read_bytes())
    # dropped on the window, like a user would
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photos))])
    win.dropEvent(QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                             Qt.KeyboardModifier.NoModifier))
    assert win.source_spec.kind == "photos" and len(win.photos.paths) == 2
    wait_until(lambda: "a_broken.jpg" in win.banner_text(), what="the undecodable-photo message", window=win)
    from PySide6.QtTest import QTest

    QTest.keyClick(win, Qt.Key.Key_Right)  # next photo: the real face
    wait_until(lambda: win.last_analysis is not None and win.last_analysis.packet.still
               and len(win.last_analysis.faces) >= 1, what="the face in the next photo", window=win)
    assert win.banner_text() == "", list(win.messages)
    assert win.photos.index == 1
    assert win.last_analysis.faces[0].track_id is None  # photos are not tracked
    assert win.isVisible()


def test_photo_opened_while_the_model_loads_is_analysed_by_the_model(make_window, model_file,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The photo goes out before the model is ready; the model then arrives while that frame is still in flight.
    The photo must end up analysed by the model (CI caught a window stuck showing the model-less result)."""
    import threading

    from eacfer.ui import window as window_module
    from eacfer.ui.session import ModelSession, passthrough

    in_flight = threading.Event()
    holder: dict = {}

    def slow_passthrough(packet):  # noqa: ANN001, ANN202
        in_flight.set()  # the photo is being handled without a model ...
        end = time.monotonic() + 30
        while (holder.get("win") is None or holder["win"].session is None) and time.monotonic() < end:
            time.sleep(0.01)  # ... and comes back only after the model has been installed
        return passthrough(packet)

    real_load = ModelSession.load.__func__

    def late_load(cls, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        assert in_flight.wait(30), "the photo was never sent without a model"
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(window_module, "passthrough", slow_passthrough)
    monkeypatch.setattr(ModelSession, "load", classmethod(late_load))
    win = make_window(checkpoint=str(model_file), source=str(ASTRONAUT))
    holder["win"] = win
    wait_until(lambda: win.last_analysis is not None and len(win.last_analysis.faces) >= 1,
               what="the photo analysed by the model", window=win)
    assert win.last_analysis.packet.still and win.last_analysis.model_path == win.session.path


def test_camera_that_disconnects_gives_a_message(make_window, clip, monkeypatch: pytest.MonkeyPatch) -> None:
    from eacfer.ui import playback
    from eacfer.ui.media import CaptureReader

    # the clip read as a live source: when it runs out, it behaves exactly like a camera unplugged mid-stream
    monkeypatch.setattr(playback, "CaptureReader", lambda spec: CaptureReader(spec, live=True))
    win = make_window(source=str(clip))
    wait_until(lambda: "stopped delivering frames" in win.banner_text(), what="the disconnect message")
    assert "camera lost" in win.banner_text() and "pick it again" in win.banner_text()
    wait_until(lambda: win.frames_displayed >= 1, what="the frames before the disconnect")
    assert win.isVisible()


def test_settings_remember_model_and_source(make_window, model_file, clip) -> None:
    first = make_window(checkpoint=str(model_file), source=str(clip))
    wait_until(lambda: playing_with_faces(first, 1), what="first window playing")
    first.close()
    second = make_window()  # nothing on the command line: both come back from the settings file
    wait_until(lambda: playing_with_faces(second, 1), what="second window playing")
    assert second.session.path == str(model_file.resolve())
    assert second.source_spec.target == str(clip)


def test_cli_screenshot_mode_after_cv2_import(model_file, clip, tmp_path: Path, cache_dir: Path) -> None:
    """`eacfer ui --screenshot --quit-after` in a fresh process that imported cv2 first."""
    import subprocess
    import sys

    shot = tmp_path / "ui.png"
    code = (
        "import os, sys, cv2\n"
        "injected = [k for k in ('QT_QPA_PLATFORM_PLUGIN_PATH', 'QT_QPA_FONTDIR') if k in os.environ]\n"
        "from eacfer.commands.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "left = [k for k in injected if k in os.environ]\n"
        "print('INJECTED', injected, 'LEFT', left)\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "EACFER_CACHE_DIR": str(cache_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", code, "ui", "--checkpoint", str(model_file), "--source", str(clip), "--screenshot",
         str(shot), "--quit-after", "1", "--settings", str(tmp_path / "s.ini"), "--size", "1000x720",
         "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "LEFT []" in proc.stdout
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (720, 1000)
    # the annotated frame is on it: box/label pixels in the palette colours, left of the side panel,
    # far more of them than in the raw frame (the panel's own bars are excluded by the crop)
    from eacfer.infer.viz import PALETTE

    def palette_pixels(bgr: np.ndarray) -> int:
        rgb = bgr[:, :, ::-1].reshape(-1, 1, 3).astype(int)
        return int((np.abs(rgb - np.array(PALETTE[:7])[None]).max(axis=2) <= 10).any(axis=1).sum())

    assert palette_pixels(img[60:660, :600]) > palette_pixels(two_face_frame(0)) + 800


def test_no_model_hint_commands_are_accepted_as_written():
    """Every `eacfer …` command the no-model hint suggests parses and passes train's --pretrained check."""
    import re
    import shlex

    from eacfer.commands.cli import build_parser
    from eacfer.training.config import check_pretrained
    from eacfer.ui.actions import NO_MODEL_HELP

    cmds = [shlex.split(c) for c in re.findall(r"`(eacfer [^`]+)`", NO_MODEL_HELP)]
    assert any(c[1] == "train" for c in cmds)
    for cmd in cmds:
        args = build_parser().parse_args(cmd[1:] + (["--checkpoint", "m.pt", "--out", "m.onnx"]
                                                    if cmd[1] == "export" else []))
        if cmd[1] == "train":
            check_pretrained(args.backbone, args.pretrained)  # mobilenet_v2 without --pretrained is refused


def test_side_panel_shows_all_seven_bars_at_1280x720(make_window, model_file, tmp_path: Path) -> None:
    """At 1280×720, with a model and a group photo on screen, every bar of the selected face is visible (the
    Neutral bar, the last, was cut off by the group box)."""
    from PIL import Image

    from testdata.scenes import photo_scenes

    photo = tmp_path / "group.png"
    Image.fromarray(next(s for s in photo_scenes() if s.name == "group_5").image).save(photo)
    win = make_window(checkpoint=str(model_file), source=str(photo))
    win.resize(1280, 720)
    wait_until(lambda: win.last_analysis is not None and len(win.last_analysis.faces) == 5, what="5 faces", window=win)
    wait_until(lambda: win.panel.bars.probabilities is not None, what="bars shown", window=win)
    bars = win.panel.bars
    assert len(bars.class_names) == 7
    assert bars.visibleRegion().boundingRect().height() == bars.height()  # no row cut off


def test_labels_of_a_crowded_group_do_not_cover_each_other() -> None:
    """Faces side by side, closer than their labels are wide: every label gets its own spot in the image."""
    from eacfer.ui.render import label_places

    boxes = [(100 + 50 * i, 300, 45, 45) for i in range(5)]
    places = label_places((720, 1280, 3), boxes, ["Happiness 97%"] * 5, 0.8, 1)
    assert all(p[2] - p[0] > 50 for p in places)  # wider than the spacing: they would overlap in one row
    for i, a in enumerate(places):
        assert 0 <= a[0] and a[2] <= 1280 and 0 <= a[1] and a[3] <= 720
        for b in places[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
