"""The CLI end to end (train → eval) on synthetic data, and one-line argument errors (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def eacfer(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 1 intra-op thread: fast and steady on a busy 2-core box
    return subprocess.Popen([sys.executable, "-m", "eacfer", *map(str, args)], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def test_cli_train_then_eval(synth_rafdb, tmp_path):
    run = tmp_path / "run"
    rc, out, err = finish(eacfer("-q", "train", "--data", synth_rafdb, "--backbone", "resnet18", "--epochs", "1",
                                 "--batch-size", "16", "--image-size", "32", "--lr", "1e-3", "--workers", "0",
                                 "--device", "cpu", "--no-tensorboard", "--out", run))
    assert rc == 0, err
    assert "final_accuracy" in out and str(run) in out
    for name in ("config.yaml", "metrics.csv", "last.pt", "model.pt", "summary.json", "train_labels_used.txt"):
        assert (run / name).is_file()
    summary = json.loads((run / "summary.json").read_text())

    ev = tmp_path / "eval"
    rc, out, err = finish(eacfer("-q", "eval", "--data", synth_rafdb, "--checkpoint", run / "model.pt", "--out", ev,
                                 "--device", "cpu"))
    assert rc == 0, err
    m = json.loads((ev / "metrics.json").read_text())
    assert m["n"] == 28 and set(m) >= {"accuracy", "mean_class_accuracy", "per_class", "confusion", "n"}
    # the model file evaluates to the accuracy the trainer measured on the same split
    assert m["accuracy"] == pytest.approx(summary["final_accuracy"])
    assert f"accuracy {m['accuracy']:.4f}" in out
    assert (ev / "confusion.png").is_file() and (ev / "predictions.csv").is_file()


ERRORS = [
    (["--epochs", "-3"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--backbone", "vgg16"], "unknown backbone 'vgg16'; known backbones:"),
    (["--noise-rate", "0.2", "--label-file", "{data}/EmoLabel/list_patition_label.txt"], "either --label-file or --noise-rate"),
    (["--data", "{tmp}/nowhere"], "dataset folder not found"),
    (["--out", "{tmp}/afile"], "is a file"),
]


def test_argument_errors_are_one_line(synth_rafdb, tmp_path):
    (tmp_path / "afile").write_text("x")
    procs = []
    for extra, _ in ERRORS:
        args = {"--data": str(synth_rafdb), "--backbone": "resnet18", "--out": str(tmp_path / "run"),
                "--epochs": "1", "--workers": "0"}
        for k, v in zip(extra[::2], extra[1::2], strict=True):
            args[k] = v.format(data=synth_rafdb, tmp=tmp_path)
        procs.append(eacfer("train", *[x for kv in args.items() for x in kv]))
    procs.append(eacfer("eval", "--data", synth_rafdb, "--checkpoint", tmp_path / "afile", "--out", tmp_path / "e"))
    expected = [m for _, m in ERRORS] + ["afile"]
    for p, match in zip(procs, expected, strict=True):
        rc, out, err = finish(p, timeout=120)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert rc == 2, err
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith("eacfer ") and "error:" in lines[0]
        import re

        assert re.search(match, lines[0]), lines[0]
    assert not (tmp_path / "run").exists()  # nothing was created for a refused run
