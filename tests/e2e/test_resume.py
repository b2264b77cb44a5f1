"""A run SIGKILLed during epoch 2 of 3 and resumed ends with exactly the metrics and weights of an
uninterrupted run (CPU, same seed) — with real subprocesses and a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from eacfer.checkpoint import load_checkpoint
from eacfer.training.trainer import read_metrics_csv

# Runs the trainer; in "kill" mode the per-batch step is wrapped (from outside the library) to announce
# that epoch 2 is under way after its second optimizer step, then hang until killed.
DRIVER = r"""
import logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO)
import torch
torch.set_num_threads(1)
import eacfer.training.engine as engine
from eacfer.training.trainer import TrainConfig, train

data, out, mode, marker = sys.argv[1:5]
if mode == "kill":
    real, calls = engine.train_step, [0]
    def step(*a, **k):
        r = real(*a, **k)
        calls[0] += 1
        if calls[0] == 4 + 2:  # 4 batches per epoch: second batch of epoch 2
            Path(marker).write_text("epoch 2")
            time.sleep(600)
        return r
    engine.train_step = step
cfg = TrainConfig(data=data, out=out, backbone="resnet18", epochs=3, batch_size=16, image_size=32, lr=1e-3,
                  workers=1, device="cpu", seed=3, resume=(mode == "resume"), progress=False, tensorboard=False)
train(cfg)
"""


def _run(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", DRIVER, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path, synth_rafdb):
    full, broken, marker = tmp_path / "full", tmp_path / "broken", tmp_path / "in_epoch2"
    killed = _run([synth_rafdb, broken, "kill", marker])
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert killed.poll() is None, f"training exited early:\n{killed.stdout.read()}"
        assert time.monotonic() < deadline, "epoch 2 never started"
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(30)
    killed.stdout.close()
    assert killed.returncode == -signal.SIGKILL
    state = load_checkpoint(broken / "last.pt")
    assert state["epoch"] == 1, "the kill must land in epoch 2, after epoch 1's checkpoint"
    assert not (broken / "model.pt").exists()
    assert len(read_metrics_csv(broken / "metrics.csv")) == 1

    # uninterrupted reference and the resumed run
    ref = _run([synth_rafdb, full, "full", marker])
    out, _ = ref.communicate(timeout=240)
    assert ref.returncode == 0, out
    resumed = _run([synth_rafdb, broken, "resume", marker])
    out, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out
    assert "resuming" in out

    a, b = read_metrics_csv(full / "metrics.csv"), read_metrics_csv(broken / "metrics.csv")
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        for k in ra:
            if k != "seconds":
                assert ra[k] == rb[k], f"epoch {ra['epoch']} {k}: {ra[k]!r} != {rb[k]!r}"
    wa = load_checkpoint(full / "model.pt")["state_dict"]
    wb = load_checkpoint(broken / "model.pt")["state_dict"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weights differ in {k}"
    # the run actually learned something different from its initialisation between epochs
    assert a[0]["train_loss"] != a[2]["train_loss"]
    assert Path(full / "summary.json").read_text().count('"finished": true') == 1


def test_resume_refuses_a_changed_label_mode_or_sampler(tmp_path):
    # soft vote targets or a balanced sampler change what the run learns: resuming with another one is a
    # different experiment, refused unless --force (and an older config without the keys means the defaults)
    from eacfer.training.trainer import _check_resumable

    base = {"backbone": "b", "method": "eac", "class_names": ["a"], "data": "d", "format": None, "label_file": None,
            "noise_rate": 0.0, "noise_seed": 0, "label_mode": "majority", "sampler": "shuffle"}
    older = {k: v for k, v in base.items() if k not in ("label_mode", "sampler")}
    _check_resumable(older, base, tmp_path / "last.pt", force=False)  # defaults: nothing changed
    for key, value in (("label_mode", "probability"), ("sampler", "balanced")):
        with pytest.raises(ValueError, match=key):
            _check_resumable(base, {**base, key: value}, tmp_path / "last.pt", force=False)
