"""``eacfer train --pipeline fast`` in one process (CPU): run folder, exact resume, pipeline choice."""

from __future__ import annotations

import pytest
import yaml

from eacfer.training.trainer import TrainConfig, read_metrics_csv, train


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
    # (with a memory-mapped decoded cache: written by the first run, mapped by the resumed one)
    cache = tmp_path / "cache"
    train(_cfg(synth_rafdb, tmp_path / "part", epochs=1, cache_dir=str(cache)))
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and files[0].startswith("decoded-test-") and files[1].startswith("decoded-train-")
    resumed = train(_cfg(synth_rafdb, tmp_path / "part", resume=True, cache_dir=str(cache)))
    assert sorted(p.name for p in cache.iterdir()) == files
    a = read_metrics_csv(tmp_path / "full" / "metrics.csv")
    b = read_metrics_csv(tmp_path / "part" / "metrics.csv")
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "train_accuracy", "test_accuracy", "lr"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-6, abs=1e-9), k
    assert resumed["final_accuracy"] == pytest.approx(full["final_accuracy"])


def test_auto_pipeline_is_fast_on_cuda_reference_on_cpu(tmp_path):
    import torch

    from eacfer.training.trainer import resolve_pipeline

    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "o"))
    assert cfg.pipeline == "auto"
    assert resolve_pipeline(cfg, torch.device("cpu")).pipeline == "reference"
    assert resolve_pipeline(cfg, torch.device("cuda")).pipeline == "fast"
    assert resolve_pipeline(_cfg(tmp_path, tmp_path / "o", pipeline="reference"), torch.device("cuda")).pipeline == "reference"


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
