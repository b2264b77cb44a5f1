"""engine: the per-batch step learns (one-batch overfit), epochs aggregate correctly, evaluation is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from eacfer import create_model
from eacfer.training.engine import evaluate, train_one_epoch, train_step


@pytest.mark.parametrize("method", ["eac", "ce"])
def test_one_batch_overfit(method):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=7)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(8, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    batch = ((x, x.flip(-1)), y, torch.arange(8))
    first = train_step(model, batch, opt, method=method, lam=5.0)
    for _ in range(49):
        out = train_step(model, batch, opt, method=method, lam=5.0)
    assert out["loss"].item() < 0.05 < first["loss"].item()
    assert out["ce"].item() < 0.05
    assert out["correct"] == 8
    if method == "eac":
        assert first["consistency"].item() > 0
    else:
        assert out["consistency"].item() == 0.0


def test_train_one_epoch_aggregates_and_swappable_step():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    x = torch.randn(10, 3, 32, 32)
    ds = TensorDataset(x, x.flip(-1), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]))
    loader = DataLoader(ds, batch_size=4, collate_fn=lambda items: (
        (torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])),
        torch.stack([i[2] for i in items]), None))
    calls = []

    def step(model, batch, optimizer, **kw):
        calls.append(kw["method"])
        n = len(batch[1])
        return {"loss": torch.tensor(float(n)), "ce": torch.tensor(1.0), "consistency": torch.tensor(0.5),
                "correct": 1, "n": n}

    stats = train_one_epoch(model, loader, opt, method="ce", step_fn=step, progress=False)
    assert calls == ["ce", "ce", "ce"]
    # sample-weighted: batches of 4, 4, 2 with loss = batch size
    assert stats["train_loss"] == pytest.approx((4 * 4 + 4 * 4 + 2 * 2) / 10)
    assert stats["train_ce"] == pytest.approx(1.0) and stats["train_consistency"] == pytest.approx(0.5)
    assert stats["train_accuracy"] == pytest.approx(3 / 10) and stats["n"] == 10


class _Oracle(nn.Module):
    """Returns its input (a one-hot of the wanted prediction) as logits."""

    def forward(self, x):
        return x * 10.0


def test_evaluate_hand_made_confusion():
    truth = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    pred = [0, 0, 1, 2, 1, 1, 2, 2, 2, 0]
    x = torch.nn.functional.one_hot(torch.tensor(pred), 3).float()
    loader = DataLoader(TensorDataset(x, torch.tensor(truth), torch.arange(10)), batch_size=3)
    m = evaluate(_Oracle(), loader, ["a", "b", "c"], progress=False, return_predictions=True)
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["per_class"] == pytest.approx({"a": 0.5, "b": 1.0, "c": 0.75})
    assert m["mean_class_accuracy"] == pytest.approx((0.5 + 1.0 + 0.75) / 3)
    assert m["confusion"] == [[2, 1, 1], [0, 2, 0], [1, 0, 3]]
    p = m["predictions"]
    np.testing.assert_array_equal(p["preds"], pred)
    np.testing.assert_array_equal(p["indices"], np.arange(10))
    np.testing.assert_allclose(p["probs"].sum(1), 1.0, rtol=1e-6)


def test_eac_step_needs_two_views():
    model = create_model("resnet18", num_classes=3)
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="x_flipped"):
        train_step(model, (torch.randn(2, 3, 32, 32), torch.tensor([0, 1])), opt, method="eac")
    with pytest.raises(ValueError, match="unknown method"):
        train_step(model, ((torch.randn(2, 3, 32, 32),) * 2, torch.tensor([0, 1])), opt, method="nope")
