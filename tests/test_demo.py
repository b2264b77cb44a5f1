"""The demo's quick mode end to end: synthesise, train, evaluate, report."""

from __future__ import annotations

import json

import torch

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
    # a second run reuses the synthetic data (not rewritten) and starts a fresh training run
    labels = root / "data" / "EmoLabel" / "list_patition_label.txt"
    stamp = labels.stat().st_mtime_ns
    torch.set_num_threads(1)
    try:
        assert main(["-q", "demo", "--quick", "--out", str(root)]) == 0
    finally:
        torch.set_num_threads(n)
    assert labels.stat().st_mtime_ns == stamp
    assert json.loads((root / "run" / "summary.json").read_text())["epochs"] == 1


def test_demo_rejects_bad_epochs(tmp_path, capsys):
    assert main(["demo", "--quick", "--epochs", "0", "--out", str(tmp_path / "d")]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
