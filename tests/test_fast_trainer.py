"""``eacfer train --pipeline fast`` in one process (CPU): run folder, exact resume, pipeline choice."""

from __future__ import annotations

import json

import pytest
import yaml

from eacfer.trainer import TrainConfig, read_metrics_csv, train


def _cfg(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), backbone="resnet18", image_size=32, batch_size=8, epochs=2,
                workers=0, device="cpu", pipeline="fast", tensorboard=False, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_fast_run_and_exact_resume(synth_rafdb, tmp_path):
    full = train(_cfg(synth_rafdb, tmp_path / "full"))
    assert full["finished"] and (tmp_path / "full" / "model.pt").exists()
    cfg = yaml.safe_load((tmp_path / "full" / "config.yaml").read_text())
    assert cfg["pipeline"] == "fast" and cfg["world_size"] == 1 and cfg["views"] == "split"
    # interrupted after epoch 1, then resumed: the same metrics as the uninterrupted run
    train(_cfg(synth_rafdb, tmp_path / "part", epochs=1))
    resumed = train(_cfg(synth_rafdb, tmp_path / "part", resume=True))
    a = read_metrics_csv(tmp_path / "full" / "metrics.csv")
    b = read_metrics_csv(tmp_path / "part" / "metrics.csv")
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "train_accuracy", "test_accuracy", "lr"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-6, abs=1e-9), k
    assert resumed["final_accuracy"] == pytest.approx(full["final_accuracy"])


def test_auto_pipeline_is_reference_on_cpu(synth_rafdb, tmp_path):
    train(_cfg(synth_rafdb, tmp_path / "r", pipeline="auto", epochs=1))
    cfg = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert cfg["pipeline"] == "reference"
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["finished"]


def test_ddp_needs_fast_pipeline_and_bad_values(synth_rafdb, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="--pipeline fast"):
        train(_cfg(synth_rafdb, tmp_path / "x", pipeline="reference"))
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ValueError, match="views"):
        train(_cfg(synth_rafdb, tmp_path / "y", views="both"))
    with pytest.raises(ValueError, match="pipeline"):
        train(_cfg(synth_rafdb, tmp_path / "z", pipeline="turbo"))
