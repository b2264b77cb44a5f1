"""``eacfer video`` command: outputs, arguments, and SIGINT (Ctrl-C) to a running process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from eacfer.commands.cli import main
from inference_testutils import count_frames, make_clip
from sigint_support import skip_if_child_ignores_sigint

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, predictor, face_rgb, exported_onnx, …


@pytest.fixture(scope="module")
def clip(face_rgb, tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", face_rgb, frames=12, size=(320, 240))


def test_video_command(model_pt, clip, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["video", str(clip), "--checkpoint", str(model_pt), "--out", str(out), "--smooth", "0.3", "--every", "2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "12 frames (6 analysed" in text and "track 1" in text and "stopped: end of file" in text
    assert count_frames(out / "annotated.mp4") == 12
    s = json.loads((out / "summary.json").read_text())
    assert s["smoothing"] == 0.3 and s["every"] == 2 and s["tracks"] == 1
    # default --classify-every auto: a MobileNetV2 model's faces are classified every 2nd analysed frame
    assert s["labels"]["classify_every"] == 2


def test_classify_every_one_classifies_every_face(model_pt, clip, tmp_path):
    out = tmp_path / "out"
    assert main(["video", str(clip), "--checkpoint", str(model_pt), "--out", str(out), "--classify-every", "1",
                 "--no-video"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["labels"] == {"classify_every": 1, "faces_classified": s["faces"], "faces_carried": 0,
                           "background": False, "faces_deferred": 0}  # a file: never in the background


@pytest.mark.parametrize("value", ["0", "-1", "often", "2.5"])
def test_bad_classify_every_is_a_usage_error(model_pt, clip, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:  # argparse: one usage line, exit 2, nothing run
        main(["video", str(clip), "--checkpoint", str(model_pt), "--out", str(tmp_path / "o"), "--classify-every",
              value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --classify-every: expected an integer >= 1 or auto" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, message", [
    (["--every", "0"], "--every"), (["--smooth", "0"], "--smooth"), (["--max-frames", "-1"], "--max-frames"),
    (["--iou", "1.5"], "--iou"),
])
def test_bad_arguments(model_pt, clip, tmp_path, capsys, extra, message):
    assert main(["video", str(clip), "--checkpoint", str(model_pt), "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_sources(model_pt, tmp_path, capsys):
    base = ["--checkpoint", str(model_pt), "--out", str(tmp_path / "o")]
    assert main(["video", str(tmp_path / "missing.mp4"), *base]) == 2
    assert "no such video file" in capsys.readouterr().err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(5000))
    assert main(["video", str(junk), *base]) == 2
    assert "junk.mp4" in capsys.readouterr().err


def test_a_photo_is_pointed_to_predict_and_writes_nothing(model_pt, face_rgb, tmp_path, capsys):
    """A photo is not a video: no one-frame annotated.mp4, but a one-line error naming `eacfer predict`."""
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.fromarray(face_rgb).save(photo)
    out = tmp_path / "o"
    assert main(["video", str(photo), "--checkpoint", str(model_pt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{photo}: a photo, not a video" in err and f"eacfer predict {photo}" in err
    assert not out.exists()


def test_sigint_flushes_every_output(model_pt, face_rgb, tmp_path, inference_cache):
    skip_if_child_ignores_sigint()
    clip = make_clip(tmp_path / "long.mp4", face_rgb, frames=1500, size=(320, 240))
    out = tmp_path / "out"
    env = {**os.environ, "EACFER_CACHE_DIR": str(inference_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "eacfer", "video", str(clip), "--checkpoint", str(model_pt),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # wait until rows reach the CSV's temporary file (the loop is running and has flushed a buffer)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        tmp = [p for p in out.iterdir() if p.name.startswith(".frames")] if out.exists() else []
        if tmp and tmp[0].stat().st_size > 0:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["interrupted"] and 0 < s["frames"] < 1500
    assert "interrupted" in stdout.lower() or "Ctrl-C" in stdout
    assert count_frames(out / "annotated.mp4") == s["frames"]
    assert len((out / "frames.csv").read_text().splitlines()) == s["frames"] + 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
