"""#18: the paper's recipe by default — explicit pretrained weights, fp32 reported numbers, ``--recipe paper``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

from eacfer.checkpoint import load_model
from eacfer.commands.cli import main
from eacfer.training.config import RECIPE_WEIGHTS, TrainConfig, pretrained_default
from eacfer.training.trainer import resolve_pipeline, train


def tiny(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), backbone="resnet18", epochs=1, batch_size=16, image_size=32, lr=1e-3,
                workers=0, device="cpu", progress=False, tensorboard=False)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("backbone", ["resnet50_msceleb", "mobilenet_v2"])
def test_missing_pretrained_is_an_argument_error_before_any_data_is_read(
    backbone: str, synth_rafdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    import eacfer.data.datasets as datasets
    import eacfer.data.formats as formats

    def no_reading(*a, **k):  # any dataset access would fail the test
        raise AssertionError("data was read before the argument check")

    for mod in (formats, datasets):
        for name in ("load_split", "detect_format"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, no_reading)
    out = tmp_path / "run"
    rc = main(["train", "--data", str(synth_rafdb), "--backbone", backbone, "--out", str(out), "--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert f"--backbone {backbone} needs --pretrained" in err
    assert "--pretrained none" in err and "random initialisation on purpose" in err
    if backbone == "resnet50_msceleb":
        assert "eacfer weights" in err and "resnet50_ft_weight.pkl" in err
    assert not out.exists()  # stopped before any work: not even the run folder


def test_backbone_defaults_are_stated_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for backbone in RECIPE_WEIGHTS:
        assert f"{backbone}: {pretrained_default(backbone)}" in text and "required" in pretrained_default(backbone)
    assert "resnet18: random initialisation" in text and "--recipe" in text
    assert pretrained_default("resnet18") == "random initialisation"


def test_pretrained_none_trains_warns_once_and_is_recorded(synth_rafdb: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "scratch"
    with caplog.at_level(logging.WARNING):
        summary = train(tiny(synth_rafdb, out, backbone="mobilenet_v2", pretrained="none"))
    warned = [r for r in caplog.records if "--pretrained none" in r.getMessage()]
    assert len(warned) == 1 and "mobilenet_v2" in warned[0].getMessage()
    assert summary["finished"] and summary["pretrained"] == "none"
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["pretrained"] == "none"
    _, info = load_model(out / "model.pt")
    assert info.train_config["pretrained"] == "none"  # the model file says it was trained from scratch


def test_backbone_without_recipe_weights_records_random_init(synth_rafdb: Path, tmp_path: Path) -> None:
    """resnet18 has no recipe weights: omitting --pretrained is allowed, and config.yaml still says 'none'."""
    train(tiny(synth_rafdb, tmp_path / "r18"))
    assert yaml.safe_load((tmp_path / "r18" / "config.yaml").read_text())["pretrained"] == "none"


def test_fast_pipeline_evaluates_in_fp32_and_trains_in_bf16(synth_rafdb: Path, tmp_path: Path, monkeypatch) -> None:
    """The fast pipeline with its CUDA settings (bf16 autocast) on a CPU: the classifier's output is bf16 in
    training steps, fp32 in the per-epoch test evaluation that produces the reported accuracy."""
    import eacfer.models as models

    seen: dict[bool, set[torch.dtype]] = {True: set(), False: set()}
    real = models.create_model

    def spy(*a, **k):
        net = real(*a, **k)
        net.fc.register_forward_hook(lambda m, i, o: seen[m.training].add(o.dtype))
        return net

    monkeypatch.setattr(models, "create_model", spy)
    summary = train(tiny(synth_rafdb, tmp_path / "fast", pipeline="fast", fast_settings={"amp": True}))
    assert seen[True] == {torch.bfloat16}, seen  # the spy sees autocast at work in training
    assert seen[False] == {torch.float32}, seen  # ... and none in evaluation
    cfg = yaml.safe_load((tmp_path / "fast" / "config.yaml").read_text())
    assert cfg["amp_effective"] == "bf16" and cfg["eval_dtype"] == "float32"
    assert summary["eval_dtype"] == "float32" and summary["pipeline"] == "fast" and summary["recipe"] == "auto"


def test_recipe_paper_gives_the_reference_configuration(synth_rafdb: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "paper"
    rc = main(["-q", "train", "--data", str(synth_rafdb), "--backbone", "resnet18", "--out", str(out), "--epochs", "1",
               "--image-size", "32", "--batch-size", "16", "--workers", "0", "--device", "cpu", "--recipe", "paper",
               "--no-tensorboard"])
    assert rc == 0, capsys.readouterr().err
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["recipe"] == "paper" and cfg["pipeline"] == "reference"
    assert cfg["amp_effective"] is False and cfg["eval_dtype"] == "float32" and cfg["cudnn_deterministic"] is True
    assert cfg["fast_settings"] == {} and cfg["compile"] is False and cfg["views"] == "split"
    assert set(cfg["recipe_deviations"]) == {"epochs", "batch_size", "image_size"}  # what this tiny run changed
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"] == "paper" and summary["pipeline"] == "reference"


def test_recipe_paper_pins_reference_on_cuda_and_refuses_fast_options(synth_rafdb: Path, tmp_path: Path) -> None:
    cfg = tiny(synth_rafdb, tmp_path / "o", recipe="paper")
    assert resolve_pipeline(cfg, torch.device("cuda")).pipeline == "reference"  # auto would pick fast there
    assert resolve_pipeline(tiny(synth_rafdb, tmp_path / "o"), torch.device("cuda")).pipeline == "fast"
    for kw, flag in (({"pipeline": "fast"}, "--pipeline fast"), ({"amp": True}, "--amp"), ({"compile": True}, "--compile"),
                     ({"views": "joint"}, "--views joint"), ({"fast_settings": {"amp": True}}, "--fast-settings")):
        with pytest.raises(ValueError, match=f"--recipe paper runs the official fp32 reference pipeline; drop {flag}"):
            tiny(synth_rafdb, tmp_path / "o", recipe="paper", **kw).validate()
    with pytest.raises(ValueError, match="--recipe must be one of auto, paper"):
        tiny(synth_rafdb, tmp_path / "o", recipe="fastest").validate()


def test_recipe_paper_sets_deterministic_cudnn(monkeypatch) -> None:
    from eacfer.training.trainer import configure_cudnn

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    configure_cudnn("paper", torch.device("cuda"))
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    configure_cudnn("auto", torch.device("cuda"))
    assert torch.backends.cudnn.deterministic is False


def test_noisy_table_compares_published_with_the_same_statistic(tmp_path: Path) -> None:
    """The published EAC rows (last-5 means) sit only under the measured last-5 table, never under 'best';
    the runs table says how each run was made."""
    import json

    from eacfer.bench.noisy import plan_grid, read_run, write_noisy_outputs
    from eacfer.bench.published import load_published

    cells = plan_grid(["resnet50_msceleb"], ["eac"], noise_rates=[0.0])
    run = tmp_path / "runs" / cells[0].name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "best_accuracy": 0.91, "best_epoch": 3, "last5_mean_accuracy": 0.9, "final_accuracy": 0.9,
        "final_mean_class_accuracy": 0.8, "epochs": 3, "epochs_planned": 3, "seconds": 1.0, "finished": True,
        "recipe": "paper", "pipeline": "reference", "pretrained": "/w/resnet50_ft_weight.pkl"}))
    (run / "model.pt").write_bytes(b"x")
    files = write_noisy_outputs(tmp_path, [read_run(cells[0], run, 3)], load_published(), plots=False)
    md = files["md"].read_text(encoding="utf-8")
    sections = md.split("## ")
    last5 = next(s for s in sections if s.startswith("Measured here: Mean test accuracy of the last 5 epochs"))
    best = next(s for s in sections if s.startswith("Measured here: Best test accuracy"))
    assert "Published, same layout" in last5 and "last-5 mean accuracy from the EAC repository" in last5
    assert "90.35" in last5 and "Published, same layout" not in best and "90.35" not in best
    assert "| paper · reference · resnet50_ft_weight.pkl |" in md
