"""The CLI end to end (train → eval) on synthetic data, and one-line argument errors (exit 2)."""

from __future__ import annotations

import json
import os
import re
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
    (["--fast-settings", "amp=sometimes"], "--fast-settings: cannot read 'amp=sometimes'; expected KEY=on"),
]


def _train_args(extra, data, tmp):
    args = {"--data": str(data), "--backbone": "resnet18", "--out": str(tmp / "run"), "--epochs": "1", "--workers": "0"}
    for k, v in zip(extra[::2], extra[1::2], strict=True):
        args[k] = v.format(data=data, tmp=tmp)
    return [x for kv in args.items() for x in kv]


def _check_one_line(rc, err, match):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("eacfer ") and "error:" in lines[0]
    assert re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize("extra, match", ERRORS, ids=[e[1].split()[0] for e in ERRORS])
def test_argument_errors_in_process(synth_rafdb, tmp_path, capsys, extra, match):
    from eacfer.commands.cli import main

    (tmp_path / "afile").write_text("x")
    rc = main(["train", *_train_args(extra, synth_rafdb, tmp_path)])
    _check_one_line(rc, capsys.readouterr().err, match)
    assert not (tmp_path / "run").exists()  # nothing was created for a refused run


def test_argument_errors_subprocess_exit_2(synth_rafdb, tmp_path):
    """The real console behaviour: one line on stderr, no traceback, exit status 2."""
    (tmp_path / "afile").write_text("x")
    procs = [(eacfer("train", *_train_args(ERRORS[i][0], synth_rafdb, tmp_path)), ERRORS[i][1]) for i in (0, 2, 5)]
    procs.append((eacfer("eval", "--data", synth_rafdb, "--checkpoint", tmp_path / "afile", "--out", tmp_path / "e"),
                  "afile"))
    for p, match in procs:
        rc, _, err = finish(p, timeout=240)
        _check_one_line(rc, err, match)
