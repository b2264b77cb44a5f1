"""Desktop-app details (#19), offscreen: photo mode names the file and "n of N"; the emotion history and
the face panel show the same face and the same kind of value; ``--quit-after`` exits non-zero when the
model or the source failed to load."""

# ruff: noqa: F811  (the fixtures of test_ui are imported and used as arguments)
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the desktop app needs the 'ui' extra (PySide6)")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from ui.test_app import (  # noqa: E402,F401
    ASTRONAUT,
    cache_dir,
    clip,
    make_window,
    model_file,
    playing_with_faces,
    qapp,
    wait_until,
)


def test_photo_mode_shows_file_name_and_position(make_window, model_file, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a_first.jpg", "b_second.jpg", "c_third.jpg"):
        shutil.copy(ASTRONAUT, photos / name)
    win = make_window(checkpoint=str(model_file), source=str(photos))
    wait_until(lambda: win.last_analysis is not None and win.session is not None, what="the first photo", window=win)
    assert win.position_label.text() == "a_first.jpg — 1 of 3"
    assert "a_first.jpg — 1 of 3" in win.windowTitle()
    win.next_item(1)
    assert win.position_label.text() == "b_second.jpg — 2 of 3"
    win.next_item(-1)
    win.next_item(-1)  # wraps around to the last one
    assert win.position_label.text() == "c_third.jpg — 3 of 3"
    wait_until(lambda: win.last_analysis.packet.name.endswith("c_third.jpg"), what="the third photo", window=win)
    # a photo has no track: the history says so instead of "no face selected" next to a selected face
    if win.selected_face_index() is not None:
        assert win.panel.history.placeholder == "no history for a photo"
        assert f"face {win.selected_face_index() + 1}" in win.panel.history_box.title()


def _panel_track(win) -> str:  # noqa: ANN001
    m = re.match(r"#(\d+) ·", win.panel.face_label.text())
    assert m, win.panel.face_label.text()
    return m.group(1)


def test_history_and_face_panel_agree_on_the_selected_face(make_window, model_file, clip) -> None:
    from eacfer.ui.session import face_probabilities

    win = make_window(checkpoint=str(model_file), source=str(clip))
    wait_until(lambda: playing_with_faces(win), what="two faces on screen", window=win)
    seen = set()
    wait_until(lambda: seen.add(win.last_analysis.packet.seq) or len(seen) >= 4, what="frames advancing")
    for smoothed in (True, False):
        win.act_smoothed.setChecked(smoothed)
        for pick in (0, 1):  # each of the two faces in turn
            a = win.last_analysis
            f = a.faces[pick]
            x, y, w, h = f.box
            win.select_at(x + w / 2, y + h / 2)
            i = win.selected_face_index()
            face = a.faces[i]
            track = _panel_track(win)
            assert track == str(face.track_id)
            kind = "smoothed" if smoothed else "raw"
            assert f"({kind})" in win.panel.face_label.text()
            # the history box names the same track and kind
            assert f"#{track} ({kind})" in win.panel.history_box.title()
            # and its newest point is exactly what the bars show
            hist = win.panel.history
            assert len(hist.times) >= 1
            assert np.allclose(hist.values[-1], win.panel.bars.probabilities, atol=1e-6)
            assert np.allclose(win.panel.bars.probabilities, face_probabilities(face, smoothed), atol=1e-6)


def test_track_history_keeps_raw_and_smoothed() -> None:
    from eacfer.ui.stats import TrackHistory

    h = TrackHistory(window_s=5)
    h.add(1, 0.0, [0.5, 0.5], raw=[0.9, 0.1])
    h.add(1, 1.0, [0.6, 0.4], raw=[0.8, 0.2])
    np.testing.assert_allclose(h.series(1)[1], [[0.5, 0.5], [0.6, 0.4]])
    np.testing.assert_allclose(h.series(1, raw=True)[1], [[0.9, 0.1], [0.8, 0.2]])
    h.add(2, 0.0, [0.3, 0.7])  # no raw given: the same values
    np.testing.assert_allclose(h.series(2, raw=True)[1], [[0.3, 0.7]])


def _ui(args: list[str], tmp_path: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "EACFER_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "eacfer", "ui", *args, "--quit-after", "0", "--settings",
                           str(tmp_path / "s.ini"), "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=180, env=env)


def test_quit_after_exits_non_zero_when_the_model_fails_to_load(tmp_path: Path, clip, cache_dir) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    p = _ui(["--checkpoint", str(broken), "--source", str(clip)], tmp_path, cache_dir)
    assert p.returncode == 1, p.stderr[-2000:]
    assert "Could not load the model" in p.stderr and "broken.pt" in p.stderr
    assert "Traceback" not in p.stderr


def test_quit_after_exits_non_zero_when_the_source_fails_to_load(tmp_path: Path, model_file, cache_dir) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 512)  # a "video" no decoder can open
    p = _ui(["--checkpoint", str(model_file), "--source", str(bad)], tmp_path, cache_dir)
    assert p.returncode == 1, p.stderr[-2000:]
    assert "clip.mp4" in p.stderr and "Traceback" not in p.stderr


def test_quit_after_exits_zero_when_everything_loads(tmp_path: Path, model_file, clip, cache_dir) -> None:
    p = _ui(["--checkpoint", str(model_file), "--source", str(clip)], tmp_path, cache_dir)
    assert p.returncode == 0, p.stderr[-2000:]
