"""Equivalence of the fast path with the reference path (engine.train_step + CPU transforms)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from eacfer.constants import RAFDB_CLASSES
from eacfer.data.transforms import EACTrainTransform, EvalTransform
from eacfer.training import engine
from eacfer.training.fast.gpu_augment import GPUAugment
from eacfer.training.fast.loader import FastLoader
from eacfer.training.fast.step import (
    DeviceMeter,
    TwoViewEAC,
    fast_evaluate,
    fast_train_epoch,
    fast_train_step,
    make_optimizer,
)
from fast_testutils import synthetic_faces, tiny_net


class _RefSet(torch.utils.data.Dataset):
    """What the reference pipeline feeds engine.train_step: ((x, x′), label, index)."""

    def __init__(self, imgs, labels, transform):
        self.imgs, self.labels, self.t = imgs, labels, transform

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        return self.t(self.imgs[i]), int(self.labels[i]), i


@pytest.mark.parametrize("method", ["eac", "ce"])
def test_one_step_equals_reference_without_augmentation(method):
    imgs, labels = synthetic_faces(12, size=40)
    ref_net = tiny_net(seed=1)
    fast_net = copy.deepcopy(ref_net)
    ref_opt = make_optimizer(ref_net.parameters(), 1e-3, 1e-4, torch.device("cpu"))
    fast_opt = make_optimizer(fast_net.parameters(), 1e-3, 1e-4, torch.device("cpu"))

    ds = _RefSet(imgs, labels, EACTrainTransform(32, augment=False))
    ref_batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=12, shuffle=False)))
    ref_net.train()
    ref_out = engine.train_step(ref_net, ref_batch, ref_opt, method=method, lam=5.0, device="cpu")

    dl = FastLoader(imgs, labels, 12, augment=GPUAugment(32, augment=False), shuffle=False)
    batch = next(iter(dl))
    fast_net.train()
    meter = DeviceMeter(torch.device("cpu"))
    out = fast_train_step(TwoViewEAC(fast_net), batch, fast_opt, method=method, lam=5.0, meter=meter)

    for k in ("loss", "ce", "consistency"):
        torch.testing.assert_close(out[k], ref_out[k], rtol=1e-6, atol=1e-7)
    grads = {n: p.grad for n, p in ref_net.named_parameters()}
    for n, p in fast_net.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-5, atol=1e-7, msg=f"gradient of {n}")
    # after the optimizer step: same weights and the same BatchNorm running statistics
    for (n, a), (_, b) in zip(ref_net.state_dict().items(), fast_net.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=f"state {n}")
    stats = meter.result()
    assert stats["n"] == 12 and stats["train_accuracy"] * 12 == ref_out["correct"]
    assert stats["train_loss"] == pytest.approx(ref_out["loss"].item(), rel=1e-6)


def test_joint_views_change_batchnorm_statistics_only_in_train_mode():
    imgs, labels = synthetic_faces(8, size=40)
    x, xf, _, _ = next(iter(FastLoader(imgs, labels, 8, augment=GPUAugment(32, flip_view="independent",
                                                                               noise_p=1.0), seed=0)))
    net = tiny_net(seed=2)
    split, joint = TwoViewEAC(net, "split"), TwoViewEAC(net, "joint")
    net.eval()  # running statistics: the two ways are the same computation
    for a, b in zip(split(x, xf), joint(x, xf), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    net.train()  # batch statistics over [x; x′] differ from per-view ones
    a, b = split(x, xf), joint(x, xf)
    assert not torch.allclose(a[0], b[0], atol=1e-4)


def _train_reference(imgs, labels, test_imgs, test_labels, epochs, seed):
    torch.manual_seed(seed)
    net = tiny_net(seed=seed)
    opt = make_optimizer(net.parameters(), 5e-3, 1e-4, torch.device("cpu"))
    dl = torch.utils.data.DataLoader(_RefSet(imgs, labels, EACTrainTransform(32)), batch_size=16, shuffle=True)
    for ep in range(epochs):
        engine.train_one_epoch(net, dl, opt, lam=5.0, epoch=ep, progress=False)
    test = torch.utils.data.DataLoader(_RefSet(test_imgs, test_labels, EvalTransform(32)), batch_size=64)
    return engine.evaluate(net, test, RAFDB_CLASSES, progress=False)["accuracy"]


def _train_fast(imgs, labels, test_imgs, test_labels, epochs, seed, views="split"):
    net = tiny_net(seed=seed)
    model = TwoViewEAC(net, views)
    opt = make_optimizer(net.parameters(), 5e-3, 1e-4, torch.device("cpu"))
    dl = FastLoader(imgs, labels, 16, augment=GPUAugment(32), seed=seed)
    for ep in range(epochs):
        stats = fast_train_epoch(model, dl, opt, lam=5.0, epoch=ep, progress=False)
    assert stats["n"] == len(imgs) and np.isfinite(stats["train_loss"])
    test = FastLoader(test_imgs, test_labels, 64, eval_transform=GPUAugment(32))
    return fast_evaluate(model, test, RAFDB_CLASSES)["accuracy"]


def test_few_epochs_comparable_accuracy():
    imgs, labels = synthetic_faces(224, size=40, seed=1)
    t_imgs, t_labels = synthetic_faces(140, size=40, seed=2)
    ref = _train_reference(imgs, labels, t_imgs, t_labels, epochs=6, seed=0)
    fast = _train_fast(imgs, labels, t_imgs, t_labels, epochs=6, seed=0)
    # both learn the task well above chance (1/7) and end up close to each other
    assert ref > 0.6 and fast > 0.6, (ref, fast)
    assert abs(ref - fast) < 0.15, (ref, fast)


def test_fast_evaluate_matches_engine_evaluate():
    imgs, labels = synthetic_faces(30, size=40)
    net = tiny_net(seed=3).eval()
    ref = engine.evaluate(net, torch.utils.data.DataLoader(_RefSet(imgs, labels, EvalTransform(32)), batch_size=7),
                          RAFDB_CLASSES, progress=False, return_predictions=True)
    fast = fast_evaluate(TwoViewEAC(net), FastLoader(imgs, labels, 8, eval_transform=GPUAugment(32)),
                         RAFDB_CLASSES, return_predictions=True)
    assert fast["confusion"] == ref["confusion"]
    np.testing.assert_allclose(fast["predictions"]["probs"], ref["predictions"]["probs"], rtol=1e-5, atol=1e-6)


def test_non_finite_loss_is_one_clear_error():
    imgs, labels = synthetic_faces(16, size=40)
    net = tiny_net(seed=0)
    with torch.no_grad():
        net.fc.bias.fill_(float("nan"))
    opt = make_optimizer(net.parameters(), 1e-3, 0.0, torch.device("cpu"))
    dl = FastLoader(imgs, labels, 8, augment=GPUAugment(32), seed=0)
    with pytest.raises(ValueError, match="training loss became nan"):
        fast_train_epoch(TwoViewEAC(net), dl, opt, epoch=3, progress=False)
