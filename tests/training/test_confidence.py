"""Calibrated confidence (#28): ECE/NLL/Brier from their definitions, temperature scaling, ``eacfer calibrate``,
the temperature in model.pt / ONNX metadata applied by every runtime, and the confidence part of ``eacfer eval``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eacfer.training.confidence import (
    brier_score,
    confidence_metrics,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
    softmax_t,
)


def test_metrics_hand_made_from_definitions():
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # bins of width 1/15: 0.9 -> bin 13 (2 samples, acc 0.5, conf 0.9); 0.6 -> bin 8 (acc 1); 0.7 -> bin 10 (acc 1)
    ece = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1 - 0.6) + 1 / 4 * abs(1 - 0.7)
    assert expected_calibration_error(p, y) == pytest.approx(ece)
    assert negative_log_likelihood(p, y) == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.6, 0.7])))
    assert brier_score(p, y) == pytest.approx(np.mean([0.02, 1.62, 0.32, 0.18]))
    b = reliability_bins(p, y)
    assert sum(b["count"]) == 4 and b["count"][13] == 2 and b["accuracy"][13] == 0.5


def test_ece_of_a_perfectly_calibrated_predictor_is_about_zero():
    rng = np.random.default_rng(0)
    n, k = 200_000, 4
    conf = rng.uniform(1 / k, 1.0, n)
    correct = rng.uniform(size=n) < conf  # right exactly as often as it says
    truth = rng.integers(0, k, n)
    top = np.where(correct, truth, (truth + rng.integers(1, k, n)) % k)
    p = np.tile(((1 - conf) / (k - 1))[:, None], (1, k))
    p[np.arange(n), top] = conf
    assert expected_calibration_error(p, truth) < 0.01
    # the same predictor made overconfident (its top probability pushed up) is far off
    sharp = softmax_t(np.log(p), 0.3)
    assert expected_calibration_error(sharp, truth) > 0.1


def _overconfident(n=3000, k=7, true_t=3.0, seed=0):
    """Labels drawn from softmax(z / true_t), but the 'model' reports softmax(z): overconfident by true_t."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 4.0, (n, k))
    p_true = softmax_t(z, true_t)
    y = np.array([rng.choice(k, p=row) for row in p_true])
    return z, y


def test_temperature_scaling_lowers_nll_of_an_overconfident_model_and_recovers_its_temperature():
    z, y = _overconfident()
    t = fit_temperature(z, y)
    assert t == pytest.approx(3.0, rel=0.15)
    before, after = confidence_metrics(softmax_t(z), y), confidence_metrics(softmax_t(z, t), y)
    assert after["nll"] < before["nll"] - 0.2
    assert after["ece"] < before["ece"] / 2
    assert after["accuracy"] == before["accuracy"]  # the argmax does not move


def test_temperature_of_an_underconfident_model_is_below_one():
    z, y = _overconfident(true_t=0.5)
    assert fit_temperature(z, y) < 0.7


def _tiny_model(path, train_config=None, temperature=1.0):
    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo

    torch.manual_seed(0)
    net = create_model("resnet18", num_classes=7)
    # sharpen the random head so the model is confidently wrong: what calibration is for
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(40.0)
    save_model(path, net, ModelInfo("resnet18", list(RAFDB_CLASSES), 32, list(IMAGENET_MEAN), list(IMAGENET_STD),
                                    train_config=train_config or {}, temperature=temperature))
    return path


def test_calibrate_refuses_the_test_split_and_fits_on_the_held_out_train_part(tmp_path, synth_rafdb, monkeypatch):
    import eacfer.data.datasets as datasets
    from eacfer.checkpoint import load_checkpoint
    from eacfer.training.calibrate import calibrate_checkpoint

    model = _tiny_model(tmp_path / "model.pt", {"val_fraction": 0.25, "seed": 3})
    with pytest.raises(ValueError, match="never fitted on the test split"):
        calibrate_checkpoint(model, synth_rafdb, split="test", device="cpu", progress=False)
    loaded = []
    real = datasets.load_split
    monkeypatch.setattr(datasets, "load_split", lambda *a, **k: loaded.append(k.get("split")) or real(*a, **k))
    rec = calibrate_checkpoint(model, synth_rafdb, device="cpu", progress=False, batch_size=16)
    assert loaded == ["train"]  # only train was read: the held-out quarter of it
    counts = np.bincount(real(synth_rafdb, "train").labels())
    expected = sum(min(max(round(0.25 * c), 1), c - 1) for c in counts if c >= 2)  # a quarter of each class
    assert rec["split"] == "val" and rec["n"] == expected
    assert rec["nll_after"] <= rec["nll_before"]
    payload = load_checkpoint(model)
    assert payload["temperature"] == pytest.approx(rec["temperature"]) and rec["temperature"] > 1.0
    assert payload["calibration"]["split"] == "val"


def test_calibrate_without_a_validation_split_says_how_to_get_one(tmp_path, synth_rafdb):
    from eacfer.training.calibrate import calibrate_checkpoint

    model = _tiny_model(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="--val-fraction"):
        calibrate_checkpoint(model, synth_rafdb, device="cpu", progress=False)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_every_runtime_applies_the_model_files_temperature(tmp_path, backend):
    from eacfer.infer.runtime.backends import load_classifier

    raw = _tiny_model(tmp_path / "raw.pt")
    cal = _tiny_model(tmp_path / "cal.pt", temperature=2.5)
    crops = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    p_raw, _ = load_classifier(raw, device="cpu", backend=backend, use_cache=False).classify(crops)
    p_cal, _ = load_classifier(cal, device="cpu", backend=backend, use_cache=False).classify(crops)
    # softmax(z / T) from softmax(z): log p = z - const
    np.testing.assert_allclose(p_cal, softmax_t(np.log(p_raw.astype(np.float64)), 2.5), atol=2e-5)
    assert p_cal.max() < p_raw.max()


def test_temperature_travels_in_the_onnx_metadata(tmp_path):
    from eacfer.checkpoint import load_model
    from eacfer.export import export_onnx_bytes
    from eacfer.infer.runtime.backends import OnnxClassifier

    net, info = load_model(_tiny_model(tmp_path / "cal.pt", temperature=1.7))
    clf = OnnxClassifier(export_onnx_bytes(net, info, dynamic_batch=True), "cal.onnx")
    assert clf.info.temperature == pytest.approx(1.7)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), 1e6, "2"])
def test_a_model_file_with_an_impossible_temperature_is_refused(tmp_path, bad):
    from eacfer.checkpoint import load_checkpoint, load_model, save_checkpoint
    from eacfer.modelinfo import CheckpointError

    path = _tiny_model(tmp_path / "m.pt")
    save_checkpoint(path, {**load_checkpoint(path), "temperature": bad})
    with pytest.raises(CheckpointError, match="temperature"):
        load_model(path)


def test_eval_reports_confidence_before_and_after_and_a_reliability_diagram(tmp_path, synth_rafdb):
    from eacfer.training.calibrate import calibrate_checkpoint
    from eacfer.training.evaluation import evaluate_checkpoint

    model = _tiny_model(tmp_path / "model.pt", {"val_fraction": 0.25, "seed": 0})
    m0 = evaluate_checkpoint(model, synth_rafdb, out_dir=tmp_path / "e0", device="cpu", progress=False)
    assert m0["confidence"]["after"] is None and not m0["confidence"]["calibrated"]
    assert (tmp_path / "e0" / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    calibrate_checkpoint(model, synth_rafdb, device="cpu", progress=False)
    evaluate_checkpoint(model, synth_rafdb, out_dir=tmp_path / "e1", device="cpu", progress=False)
    saved = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    c = saved["confidence"]
    assert c["calibrated"] and c["after"]["temperature"] > 1.0
    assert c["before"]["nll"] == pytest.approx(m0["confidence"]["before"]["nll"])
    assert c["after"]["mean_confidence"] < c["before"]["mean_confidence"]
    assert saved["accuracy"] == m0["accuracy"]  # calibration never changes a prediction
    assert sum(c["before"]["reliability"]["count"]) == saved["n"] == 28
