"""EAC loss defaults and the cross-entropy baseline's result shape (models/loss.py), from the paper:
L = CE + λ·consistency with λ = 5 for RAF-DB; the CE baseline has the same keys with a zero consistency."""

from __future__ import annotations

import pytest
import torch

from eacfer.models.loss import ce_loss, eac_loss

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)


def _batch(dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, generator=g, dtype=torch.float64).to(dtype).to(device)
    cams = torch.randn(4, 7, 3, 3, generator=g, dtype=torch.float64).to(dtype).to(device)
    cams_f = torch.randn(4, 7, 3, 3, generator=g, dtype=torch.float64).to(dtype).to(device)
    return logits, cams, cams_f, torch.tensor([0, 3, 6, 2], device=device)


def test_default_lambda_is_the_papers_5():
    logits, cams, cams_f, y = _batch()
    out = eac_loss(logits, cams, cams_f, y)
    assert out["consistency"] > 0
    torch.testing.assert_close(out["loss"], out["ce"] + 5.0 * out["consistency"])


def test_ce_baseline_has_the_same_keys_and_a_zero_consistency():
    logits, _, _, y = _batch(torch.float64)
    out = ce_loss(logits, y)
    assert set(out) == {"loss", "ce", "consistency"}
    torch.testing.assert_close(out["ce"], torch.nn.functional.cross_entropy(logits, y))
    assert out["loss"] is out["ce"]
    assert out["consistency"].shape == () and float(out["consistency"]) == 0.0
    assert out["consistency"].dtype == torch.float64  # follows the logits (logged next to the CE)


def test_ce_baseline_consistency_lives_on_the_logits_device():
    logits, _, _, y = _batch(device="meta")  # a device other than the default one, available everywhere
    out = ce_loss(logits, y)
    assert out["consistency"].device.type == "meta" and out["ce"].device.type == "meta"
