"""Metrics on hand-made cases, the confusion plot, and ``evaluate_checkpoint`` outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from eacfer.training.metrics import classification_metrics, confusion_matrix, plot_confusion


def test_metrics_hand_made_case():
    names = ["Surprise", "Fear", "Disgust"]
    truth = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    pred = [0, 0, 1, 2, 1, 1, 2, 2, 2, 0]
    m = classification_metrics(truth, pred, names)
    assert m["n"] == 10
    assert m["accuracy"] == 0.7
    assert m["per_class"] == {"Surprise": 0.5, "Fear": 1.0, "Disgust": 0.75}
    assert m["mean_class_accuracy"] == pytest.approx(0.75)
    assert m["confusion"] == [[2, 1, 1], [0, 2, 0], [1, 0, 3]]  # rows = truth


def test_absent_class_is_none_and_not_averaged():
    m = classification_metrics([0, 0, 1], [0, 1, 1], ["a", "b", "c"])
    assert m["per_class"] == {"a": 0.5, "b": 1.0, "c": None}
    assert m["mean_class_accuracy"] == pytest.approx(0.75)
    assert m["confusion"][2] == [0, 0, 0]


def test_confusion_rejects_bad_input():
    with pytest.raises(ValueError, match="length"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 2], [0, 1], 2)


def test_plot_confusion_writes_png(tmp_path):
    p = plot_confusion(np.array([[5, 1], [0, 0]]), ["a", "b"], tmp_path / "c.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_evaluate_checkpoint_outputs(tmp_path, synth_rafdb):
    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo
    from eacfer.training.evaluation import evaluate_checkpoint

    torch.manual_seed(0)
    net = create_model("resnet18", num_classes=7)
    save_model(tmp_path / "model.pt", net, ModelInfo("resnet18", list(RAFDB_CLASSES), 32, list(IMAGENET_MEAN),
                                                     list(IMAGENET_STD)))
    out = tmp_path / "eval"
    m = evaluate_checkpoint(tmp_path / "model.pt", synth_rafdb, out_dir=out, device="cpu", batch_size=10, progress=False)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n"] == m["n"] == 28
    cm = np.array(saved["confusion"])
    assert cm.shape == (7, 7) and cm.sum() == 28
    assert saved["accuracy"] == pytest.approx(np.trace(cm) / 28)
    assert set(saved["per_class"]) == set(RAFDB_CLASSES)
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 28
    assert list(rows[0])[:3] == ["file", "truth", "prediction"] and f"p_{RAFDB_CLASSES[0]}" in rows[0]
    assert rows[0]["file"].endswith("_aligned.jpg")
    agree = sum(r["truth"] == r["prediction"] for r in rows) / 28
    assert agree == pytest.approx(saved["accuracy"])
    probs = np.array([[float(r[f"p_{c}"]) for c in RAFDB_CLASSES] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    truth_counts = {c: sum(r["truth"] == c for r in rows) for c in RAFDB_CLASSES}
    assert [sum(row) for row in saved["confusion"]] == [truth_counts[c] for c in RAFDB_CLASSES]


def test_evaluate_checkpoint_class_mismatch(tmp_path, synth_rafdb):
    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.modelinfo import ModelInfo
    from eacfer.training.evaluation import evaluate_checkpoint

    net = create_model("resnet18", num_classes=3)
    save_model(tmp_path / "m.pt", net, ModelInfo("resnet18", ["x", "y", "z"], 32, [0.5] * 3, [0.5] * 3))
    with pytest.raises(ValueError, match="do not match"):
        evaluate_checkpoint(tmp_path / "m.pt", synth_rafdb, device="cpu", progress=False)
