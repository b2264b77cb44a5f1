"""The demo's quick mode end to end: synthesise, train, evaluate, report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from eacfer import demo
from eacfer.commands.cli import main


def test_demo_quick(tmp_path, capsys):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # steady on a busy 2-core machine
    try:
        assert main(["-q", "demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    finally:
        torch.set_num_threads(n)
    report = capsys.readouterr().out
    root = tmp_path / "demo"
    for rel in ("run/model.pt", "run/metrics.csv", "run/summary.json", "run/config.yaml", "eval/metrics.json",
                "eval/confusion.png", "eval/predictions.csv", "data/EmoLabel/list_patition_label.txt"):
        assert (root / rel).is_file(), rel
        if rel.startswith(("run/", "eval/")):
            assert str(root / rel) in report, f"report does not say where {rel} went"
    m = json.loads((root / "eval" / "metrics.json").read_text())
    assert m["n"] == 35
    assert f"accuracy  {m['accuracy']:.3f}" in report
    assert "SYNTHETIC" in report
    # issue 31: the demo ends with the bundled starter model on the same real face (the astronaut smiles)
    starter = [ln for ln in report.splitlines() if ln.strip().startswith("starter model")]
    assert len(starter) == 1 and "Happiness" in starter[0] and "FER2013" in starter[0]
    assert "not an EAC model" in starter[0]
    # a second run reuses the synthetic data and the finished model (neither rewritten), and says so (#30)
    labels = root / "data" / "EmoLabel" / "list_patition_label.txt"
    model = root / "run" / "model.pt"
    stamps = labels.stat().st_mtime_ns, model.stat().st_mtime_ns, model.read_bytes()
    torch.set_num_threads(1)
    try:
        assert main(["-q", "demo", "--quick", "--out", str(root)]) == 0
    finally:
        torch.set_num_threads(n)
    assert (labels.stat().st_mtime_ns, model.stat().st_mtime_ns, model.read_bytes()) == stamps
    again = capsys.readouterr().out
    assert "reused the model an earlier demo trained" in again and "--retrain" in again
    assert json.loads((root / "run" / "summary.json").read_text())["epochs"] == 1


def test_demo_rejects_bad_epochs(tmp_path, capsys):
    assert main(["demo", "--quick", "--epochs", "0", "--out", str(tmp_path / "d")]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def finished_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick demo folder with its finished model (copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "demo"
    mp = pytest.MonkeyPatch()
    mp.setattr(demo, "run_inference_demo", lambda *a, **k: {})  # not what these tests are about (and slow)
    try:
        demo.run_demo(out, quick=True, progress=False)
    finally:
        mp.undo()
    return out


@pytest.fixture
def copied_demo(finished_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "demo"
    shutil.copytree(finished_demo, out)
    monkeypatch.setattr(demo, "run_inference_demo", lambda *a, **k: {})
    return out


def _fail_after_the_run_folder_is_prepared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training fails right after the trainer prepared its run folder (where ``force`` deleted the old model)."""
    from eacfer.training import trainer

    real = trainer.prepare_run_dir

    def prepare_then_fail(cfg, write=True):
        real(cfg, write)
        raise RuntimeError("simulated crash during training")

    monkeypatch.setattr(trainer, "prepare_run_dir", prepare_then_fail)


def test_failed_retraining_keeps_the_finished_model(copied_demo: Path, monkeypatch) -> None:
    """Other settings (--epochs 2) train a new model; when that fails, the finished one is still there (#30:
    the old demo deleted it at once)."""
    model = copied_demo / "run" / "model.pt"
    before = model.read_bytes()
    _fail_after_the_run_folder_is_prepared(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        demo.run_demo(copied_demo, quick=True, epochs=2, progress=False)
    assert model.read_bytes() == before
    assert (copied_demo / "run" / "summary.json").is_file() and (copied_demo / "run" / demo.MODEL_STAMP).is_file()
    assert not (copied_demo / "run.previous").exists()


def test_retrain_replaces_the_model_once_the_new_one_is_finished(copied_demo: Path, caplog) -> None:
    model = copied_demo / "run" / "model.pt"
    before = model.stat().st_mtime_ns
    r = demo.run_demo(copied_demo, quick=True, progress=False, retrain=True)
    assert not r.reused and model.stat().st_mtime_ns != before
    assert "reused" not in demo.format_report(r)
    assert not (copied_demo / "run.previous").exists()
    # other settings are not reused either: a new model for --epochs 2, and the replacement is announced
    caplog.clear()
    r = demo.run_demo(copied_demo, quick=True, epochs=2, progress=False)
    assert not r.reused and json.loads((copied_demo / "run" / "summary.json").read_text())["epochs"] == 2
    assert any("trained with other demo settings" in m and "replaces it once finished" in m for m in caplog.messages)


def test_a_demo_killed_while_retraining_gets_its_model_back(copied_demo: Path) -> None:
    """Killed (no clean-up) while training the replacement: the next demo restores and reuses the old model."""
    run = copied_demo / "run"
    before = (run / "model.pt").read_bytes()
    run.rename(copied_demo / "run.previous")
    run.mkdir()
    (run / "config.yaml").write_text("epochs: 1\n")  # what a just-started training run holds
    r = demo.run_demo(copied_demo, quick=True, progress=False)
    assert r.reused and (run / "model.pt").read_bytes() == before
    assert not (copied_demo / "run.previous").exists()
