"""Regression tests for fixes made during integration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eacfer.infer.stream.sources import _not_a_video


def test_local_playlist_is_not_refused_as_text(tmp_path: Path) -> None:
    playlist = tmp_path / "stream.m3u8"
    playlist.write_text("#EXTM3U\n#EXTINF:10,\nsegment0.ts\n")
    assert _not_a_video(playlist) is None
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video\n")
    assert _not_a_video(notes) == "looks like a text file, not a video"


def _ui(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "eacfer", "ui", "--settings", str(tmp_path / "ui.ini"), *args],
        capture_output=True, text=True, timeout=90, env=env,
    )


def test_ui_missing_checkpoint_is_an_argument_error(tmp_path: Path) -> None:
    pytest.importorskip("PySide6", reason="the desktop app needs the 'ui' extra (PySide6)")
    r = _ui(["--checkpoint", str(tmp_path / "nope.pt"), "--quit-after", "0"], tmp_path)
    assert r.returncode == 2
    assert "nope.pt: model file not found" in r.stderr and "Traceback" not in r.stderr


def test_ui_quit_after_ends_when_the_source_fails_at_start(tmp_path: Path) -> None:
    # The window settles inside its constructor for a missing source; --quit-after used to wait out a
    # 120 s grace period because the ready signal had fired before anyone listened (timeout=90 catches it).
    pytest.importorskip("PySide6", reason="the desktop app needs the 'ui' extra (PySide6)")
    shot = tmp_path / "shot.png"
    r = _ui(["--source", str(tmp_path / "missing.mp4"), "--quit-after", "0", "--screenshot", str(shot)], tmp_path)
    # it ends at once (no grace period), still takes the screenshot, and says the source failed: exit 1
    # (issue #19: with --quit-after the status is non-zero when the model or the source failed to load)
    assert r.returncode == 1, r.stderr
    assert "missing.mp4: file not found" in r.stderr
    assert shot.is_file() and shot.stat().st_size > 0
