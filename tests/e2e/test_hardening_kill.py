"""SIGKILL in the middle of ``eacfer predict`` / ``eacfer video``: no half-written output that looks valid.

The outputs are streamed to hidden temporary files and renamed when complete, so after a kill the
visible result files either do not exist or are whole (from an earlier complete run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hostile


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from inference_testutils import save_random_model

    return save_random_model(tmp_path_factory.mktemp("kill_model") / "model.pt")


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EACFER_CACHE_DIR": str(cwd / "cache")}
    return subprocess.Popen([sys.executable, "-m", "eacfer", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when(p: subprocess.Popen, out: Path, pattern: str, delay: float) -> None:
    """SIGKILL ``p`` ``delay`` s after a temporary output matching ``pattern`` appears in ``out``."""
    deadline = time.monotonic() + 180
    while not (out.is_dir() and list(out.glob(pattern))):
        assert p.poll() is None, "finished before it could be killed (make the input longer)"
        assert time.monotonic() < deadline, "no temporary output appeared"
        time.sleep(0.01)
    time.sleep(delay)
    assert p.poll() is None, "finished before it could be killed (make the input longer)"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def test_predict_killed_mid_run(model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(250):
        shutil.copy(hostile.FACE, photos / f"p{i:03d}.jpg")
    out = tmp_path / "out"
    # a complete earlier run's outputs must survive a killed rerun untouched
    (out).mkdir()
    old = {"columns": ["file"], "predictions": [], "summary": {"files": 0}}
    (out / "predictions.json").write_text(json.dumps(old))
    (out / "predictions.csv").write_text("file\n")
    # --overwrite: out/ holds an earlier job's results (the output-folder rule); they are replaced only when the
    # new run completes
    p = _start(["predict", str(photos), "--checkpoint", str(model), "--out", str(out), "--detector", "none",
                "--overwrite"],
               tmp_path)
    _kill_when(p, out, ".predictions.csv.*", 0.3)
    assert json.loads((out / "predictions.json").read_text()) == old
    assert (out / "predictions.csv").read_text() == "file\n"


def test_video_killed_mid_run(model, tmp_path):
    import cv2
    import numpy as np

    clip = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120))
    face = cv2.resize(cv2.imread(str(hostile.FACE)), (160, 120))
    for i in range(600):
        w.write(np.roll(face, i, axis=1))
    w.release()
    out = tmp_path / "vout"
    p = _start(["video", str(clip), "--checkpoint", str(model), "--out", str(out), "--detector", "none"], tmp_path)
    _kill_when(p, out, ".annotated.*", 1.0)
    visible = sorted(q.name for q in out.iterdir() if not q.name.startswith("."))
    assert visible == [], visible  # no annotated.mp4 / frames.csv / summary.json that looks finished
