"""``eacfer video`` keeps memory flat whatever the clip's length (docs: streaming, the tracker keeps only open
tracks): the peak RSS of a 10× longer clip stays within a generous bound of the short clip's peak.

Measured on the real CLI in a child process (``os.wait4`` gives that child's own peak RSS). 640×360 frames are
~0.7 MB each, so keeping every decoded frame of the long clip would add ~250 MB — far above the bound.

Both model kinds run: a ``model.pt`` (its ONNX export is cached once) and an exported ``.onnx`` given directly,
the runtime-only path of issue #25 (no torch once that path is torch-free).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inference_testutils import make_clip

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, face_rgb, inference_cache, …

SHORT, LONG = 36, 360
SIZE = (640, 360)


def _peak_rss_mb(args: list[str], log_dir) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log_dir / "stdout.txt", "w") as out, open(log_dir / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "eacfer", *args], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, (log_dir / "stderr.txt").read_text()[-2000:]
    return usage.ru_maxrss / 1024.0  # Linux reports KiB


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "wait4"), reason="os.wait4 (per-child peak RSS) is POSIX-only")
@pytest.mark.parametrize("model_fixture", ["model_pt", "exported_onnx_b1"])
def test_peak_memory_does_not_grow_with_clip_length(model_fixture, request, face_rgb, tmp_path, inference_cache):
    from eacfer.infer.runtime.backends import load_classifier

    model = request.getfixturevalue(model_fixture)
    load_classifier(model, device="cpu")  # fills the ONNX export cache: neither run pays for the export
    peaks = {}
    for n in (SHORT, LONG):
        clip = make_clip(tmp_path / f"clip{n}.mp4", face_rgb, frames=n, size=SIZE)
        out = tmp_path / f"out{n}"
        log_dir = tmp_path / f"log{n}"
        log_dir.mkdir()
        peaks[n] = _peak_rss_mb(["video", str(clip), "--checkpoint", str(model), "--out", str(out)], log_dir)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["frames"] == n  # the whole clip was processed
    frame_mb = SIZE[0] * SIZE[1] * 3 / 2**20
    bound = peaks[SHORT] + 100.0  # generous: allocator noise, encoder buffers, a few tracks
    print(f"peak RSS: {peaks[SHORT]:.0f} MB ({SHORT} frames), {peaks[LONG]:.0f} MB ({LONG} frames)")
    assert peaks[LONG] <= bound, (
        f"peak RSS {peaks[LONG]:.0f} MB for {LONG} frames vs {peaks[SHORT]:.0f} MB for {SHORT} "
        f"(bound {bound:.0f} MB; keeping every frame would add ~{(LONG - SHORT) * frame_mb:.0f} MB)")
    assert (LONG - SHORT) * frame_mb > 2 * (bound - peaks[SHORT])  # the bound would catch a per-frame leak
