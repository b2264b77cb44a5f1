"""``eacfer train --val-fraction`` (a stratified, seeded hold-out of train for calibration) and ``eacfer calibrate``
end to end (#28)."""

from __future__ import annotations

import numpy as np
import pytest

from eacfer.data.holdout import stratified_holdout


def test_holdout_is_stratified_seeded_and_leaves_every_class_in_training():
    y = np.array([0] * 40 + [1] * 20 + [2] * 3 + [3] * 1)
    m = stratified_holdout(y, 0.25, seed=5)
    assert [int(m[y == c].sum()) for c in range(4)] == [10, 5, 1, 0]  # a quarter of each; a single sample stays
    assert np.array_equal(m, stratified_holdout(y, 0.25, seed=5))
    assert not np.array_equal(m, stratified_holdout(y, 0.25, seed=6))
    with pytest.raises(ValueError, match="--val-fraction"):
        stratified_holdout(y, 1.0, seed=0)


def test_paper_recipe_refuses_a_validation_hold_out(synth_rafdb, tmp_path, capsys):
    from eacfer.commands.cli import main

    rc = main(["train", "--data", str(synth_rafdb), "--backbone", "resnet18", "--out", str(tmp_path / "run"),
               "--epochs", "1", "--workers", "0", "--recipe", "paper", "--val-fraction", "0.1"])
    assert rc == 2 and "--val-fraction 0.1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_with_val_fraction_then_calibrate_then_eval(synth_rafdb, tmp_path, capsys):
    import torch

    from eacfer.commands.cli import main
    from eacfer.data.datasets import load_split

    torch.manual_seed(0)
    run = tmp_path / "run"
    rc = main(["-q", "train", "--data", str(synth_rafdb), "--backbone", "resnet18", "--out", str(run), "--epochs", "1",
               "--batch-size", "16", "--image-size", "32", "--lr", "1e-3", "--workers", "0", "--device", "cpu",
               "--no-tensorboard", "--val-fraction", "0.25", "--seed", "4"])
    assert rc == 0, capsys.readouterr().err
    train = load_split(synth_rafdb, "train")
    held = stratified_holdout(train.labels(), 0.25, seed=4)
    used = (run / "train_labels_used.txt").read_text().split()
    held_names = {s.name for s, m in zip(train.samples, held, strict=True) if m}
    assert held_names and not held_names & set(used)  # the held-out images were not trained on
    capsys.readouterr()
    rc = main(["-q", "calibrate", "--checkpoint", str(run / "model.pt"), "--data", str(synth_rafdb),
               "--out", str(tmp_path / "cal.pt"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and f"(n={len(held_names)})" in out and "val" in out
    rc = main(["-q", "calibrate", "--checkpoint", str(run / "model.pt"), "--data", str(synth_rafdb),
               "--split", "test"])
    assert rc == 2 and "never fitted on the test split" in capsys.readouterr().err
    rc = main(["-q", "eval", "--checkpoint", str(tmp_path / "cal.pt"), "--data", str(synth_rafdb),
               "--out", str(tmp_path / "ev"), "--device", "cpu", "--tta", "flip"])
    out = capsys.readouterr().out
    assert rc == 0 and "calibrated (T=" in out and "flip TTA: accuracy" in out
    assert (tmp_path / "ev" / "reliability.png").is_file()


def test_resume_refuses_a_changed_val_fraction(tmp_path):
    # another hold-out is another training set: a different experiment, refused unless --force; a run folder
    # from before the option (no key) held nothing out
    from eacfer.training.trainer import _check_resumable

    base = {"backbone": "b", "method": "eac", "class_names": ["a"], "data": "d", "format": None, "label_file": None,
            "noise_rate": 0.0, "noise_seed": 0, "label_mode": "majority", "sampler": "shuffle", "val_fraction": 0.0}
    older = {k: v for k, v in base.items() if k != "val_fraction"}
    _check_resumable(older, base, tmp_path / "last.pt", force=False)
    with pytest.raises(ValueError, match="val_fraction: 0.0 -> 0.1"):
        _check_resumable(older, {**base, "val_fraction": 0.1}, tmp_path / "last.pt", force=False)
