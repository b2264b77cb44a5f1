"""Soft (probability) targets in the EAC / CE losses, checked against the definition computed by hand, and the
class-balanced sampler's class frequencies (statistical, fixed seed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eacfer.models.loss import ce_loss, eac_loss


def test_soft_ce_against_hand_computation():
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    target = torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.25, 0.75]])
    # CE(z, p) = -Σ_k p_k log softmax(z)_k, averaged over the batch — by hand, with math only
    expected = 0.0
    for z, p in zip(logits.tolist(), target.tolist(), strict=True):
        log_norm = math.log(sum(math.exp(v) for v in z))
        expected += -sum(pk * (zk - log_norm) for zk, pk in zip(z, p, strict=True))
    expected /= 2
    assert ce_loss(logits, target)["ce"].item() == pytest.approx(expected, rel=1e-6)
    cams = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    flipped = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    soft = eac_loss(logits, cams, flipped, target, lam=5.0)
    hard = eac_loss(logits, cams, flipped, torch.tensor([0, 2]), lam=5.0)
    assert soft["ce"].item() == pytest.approx(expected, rel=1e-6)
    assert soft["consistency"].item() == hard["consistency"].item()  # the consistency term does not see labels
    assert soft["loss"].item() == pytest.approx(expected + 5.0 * hard["consistency"].item(), rel=1e-6)


def test_one_hot_targets_equal_hard_labels_and_gradients_flow():
    logits = torch.randn(4, 7, generator=torch.Generator().manual_seed(2), requires_grad=True)
    labels = torch.tensor([0, 3, 6, 3])
    one_hot = torch.nn.functional.one_hot(labels, 7).float()
    assert ce_loss(logits, one_hot)["ce"].item() == pytest.approx(ce_loss(logits, labels)["ce"].item(), rel=1e-6)
    ce_loss(logits, one_hot)["loss"].backward()
    # d CE / d z = softmax(z) - p, averaged over the batch
    expected = (torch.softmax(logits.detach(), 1) - one_hot) / 4
    torch.testing.assert_close(logits.grad, expected)
    with pytest.raises(ValueError, match="do not match logits"):
        ce_loss(logits, torch.ones(4, 6) / 6)


def test_train_step_with_soft_targets_counts_accuracy_against_their_argmax():
    from eacfer import create_model
    from eacfer.training.engine import train_step

    torch.manual_seed(0)
    net = create_model("resnet18", num_classes=3)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # no update: the step's accounting is what is checked
    x = torch.randn(4, 3, 32, 32)
    target = torch.tensor([[0.7, 0.3, 0], [0, 0.4, 0.6], [0.2, 0.5, 0.3], [1.0, 0, 0]])
    out = train_step(net, ((x, x.flip(-1)), target, torch.arange(4)), opt, method="eac", lam=5.0)
    with torch.no_grad():  # train mode, same batch: the same BatchNorm batch statistics as in the step
        preds = net(x).argmax(1)
    assert out["n"] == 4
    assert out["correct"] == int((preds == target.argmax(1)).sum())
    assert np.isfinite(out["loss"].item())


def test_balanced_sampler_equalises_class_frequencies():
    from eacfer.training.run_data import balanced_sampler

    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    draws = []
    sampler = balanced_sampler(labels, 3, torch.Generator().manual_seed(0))
    for _ in range(100):  # 100 epochs of 100 draws
        draws.extend(list(sampler))
    freq = np.bincount(labels[np.asarray(draws)], minlength=3) / len(draws)
    # each class 1/3 in expectation; binomial sd ≈ 0.0047, so ±0.025 is beyond 5 sd
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.025)
    # plain shuffling would give 0.9 / 0.09 / 0.01; and the same seed gives the same draws
    again = balanced_sampler(labels, 3, torch.Generator().manual_seed(0))
    assert list(again) == draws[:100]


def test_make_loaders_uses_the_balanced_sampler(tmp_path, synth_rafdb):
    from torch.utils.data import WeightedRandomSampler

    from eacfer.training.config import TrainConfig
    from eacfer.training.run_data import build_datasets, make_loaders

    cfg = TrainConfig(data=str(synth_rafdb), out=str(tmp_path / "o"), backbone="resnet18", image_size=32,
                      workers=0, progress=False, sampler="balanced")
    data = build_datasets(cfg)
    train_loader, _ = make_loaders(cfg, data, torch.Generator().manual_seed(0))
    sampler = train_loader.sampler.inner  # inside the per-sample seeding (run_data.SeededSampler)
    assert isinstance(sampler, WeightedRandomSampler)
    counts = np.bincount(data.train.labels(), minlength=7)
    w = sampler.weights.numpy()
    np.testing.assert_allclose(w, 1.0 / counts[data.train.labels()])


def test_soft_targets_and_balanced_sampler_run_in_the_reference_pipeline():
    from eacfer.training.trainer import TrainConfig, resolve_pipeline

    cuda = torch.device("cuda")  # only the decision is tested: no GPU needed
    soft = TrainConfig(data="d", out="o", label_mode="probability")
    assert resolve_pipeline(soft, cuda).pipeline == "reference"
    assert resolve_pipeline(TrainConfig(data="d", out="o", sampler="balanced"), cuda).pipeline == "reference"
    assert resolve_pipeline(TrainConfig(data="d", out="o"), cuda).pipeline == "fast"
    with pytest.raises(ValueError, match="need --pipeline reference"):
        resolve_pipeline(TrainConfig(data="d", out="o", sampler="balanced", pipeline="fast"), cuda)


def test_dataset_yields_probability_targets(tmp_path):
    from dataset_makers import make_ferplus
    from eacfer.data.datasets import FERDataset
    from eacfer.data.formats import load_split

    root = make_ferplus(tmp_path / "F", [("Training", "a.png", [0, 7, 3, 0, 0, 0, 0, 0, 0, 0]),
                                         ("Training", "b.png", [9, 0, 0, 0, 0, 0, 0, 0, 0, 1])])
    soft = FERDataset(load_split(root, "train", label_mode="probability"))
    np.testing.assert_allclose(soft[0][1], [0, 0.7, 0.3, 0, 0, 0, 0, 0], rtol=1e-6)
    assert soft[0][1].dtype == np.float32 and soft.labels().tolist() == [1, 0]
    hard = FERDataset(load_split(root, "train"))
    assert hard[0][1] == 1 and hard[1][1] == 0
