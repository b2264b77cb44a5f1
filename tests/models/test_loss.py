"""EAC loss against a transcription of the official formulation, and where its gradients go."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from eacfer import create_model, eac_loss
from eacfer.models.loss import ce_loss, flip_cams

# ---- transcription of the paper / official code, written independently of eacfer.models.loss -----------------


def official_cams(features: torch.Tensor, fc_weight: torch.Tensor) -> torch.Tensor:
    """hm = (F.unsqueeze(1) * W.view(1, K, C, 1, 1)).sum(2), with W taken as data (no gradient)."""
    n, c, h, w = features.shape
    k = fc_weight.shape[0]
    weights = fc_weight.data.view(1, k, c, 1, 1)
    return (features.unsqueeze(1) * weights).sum(2)


def generate_flip_grid(w: int, h: int) -> torch.Tensor:
    """Sampling grid that mirrors a map along its width (normalised coordinates, x negated)."""
    x_ = torch.arange(w).view(1, -1).expand(h, -1)
    y_ = torch.arange(h).view(-1, 1).expand(-1, w)
    grid = torch.stack([x_, y_], dim=0).float().unsqueeze(0)
    grid[:, 0, :, :] = 2 * grid[:, 0, :, :] / (w - 1) - 1
    grid[:, 1, :, :] = 2 * grid[:, 1, :, :] / (h - 1) - 1
    grid[:, 0, :, :] = -grid[:, 0, :, :]
    return grid


def official_attention_consistency(hm1: torch.Tensor, hm2: torch.Tensor) -> torch.Tensor:
    n, _, h, w = hm1.shape
    grid = generate_flip_grid(w, h).expand(n, -1, -1, -1).permute(0, 2, 3, 1)
    hm2_flipped = F.grid_sample(hm2, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return F.mse_loss(hm1, hm2_flipped)


def official_total(model, x1, x2, labels, lam):
    f1 = model.backbone(x1)
    f2 = model.backbone(x2)
    logits = model.fc(F.adaptive_avg_pool2d(f1, 1).flatten(1))
    ce = F.cross_entropy(logits, labels)
    cons = official_attention_consistency(official_cams(f1, model.fc.weight), official_cams(f2, model.fc.weight))
    return ce + lam * cons, ce, cons


# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(96, 96), (96, 160)])
def test_eac_loss_equals_official_formulation(hw):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=7).eval()
    x1 = torch.randn(4, 3, *hw)
    x2 = torch.randn(4, 3, *hw)  # an independent view: the CAM flip must still match exactly
    labels = torch.tensor([0, 3, 6, 2])
    with torch.no_grad():
        ref_total, ref_ce, ref_cons = official_total(model, x1, x2, labels, lam=5.0)
        logits, cams = model.forward_with_cams(x1)
        _, cams2 = model.forward_with_cams(x2)
        out = eac_loss(logits, cams, cams2, labels, lam=5.0)
    assert cams.shape[-1] > 1 and ref_cons > 0
    assert abs(out["loss"].item() - ref_total.item()) < 1e-6 * max(1.0, abs(ref_total.item()))
    assert abs(out["ce"].item() - ref_ce.item()) < 1e-6
    assert abs(out["consistency"].item() - ref_cons.item()) < 1e-6 * max(1.0, ref_cons.item())


def test_flip_cams_matches_grid_sample_flip():
    torch.manual_seed(0)
    hm = torch.randn(3, 7, 5, 6)
    grid = generate_flip_grid(6, 5).expand(3, -1, -1, -1).permute(0, 2, 3, 1)
    ref = F.grid_sample(hm, grid, mode="bilinear", padding_mode="border", align_corners=True)
    torch.testing.assert_close(flip_cams(hm), ref, rtol=0, atol=1e-6)


def test_consistency_gradient_does_not_reach_fc_weights():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=7).train()
    x = torch.randn(4, 3, 64, 64)
    labels = torch.tensor([1, 2, 3, 4])
    logits, cams = model.forward_with_cams(x)
    _, cams2 = model.forward_with_cams(torch.randn(4, 3, 64, 64))
    out = eac_loss(logits, cams, cams2, labels, lam=5.0)
    out["consistency"].backward(retain_graph=True)
    assert model.fc.weight.grad is None or not model.fc.weight.grad.any()
    trunk_grad = model.backbone.conv1.weight.grad
    assert trunk_grad is not None and trunk_grad.abs().sum() > 0  # it does train the trunk
    model.zero_grad(set_to_none=True)
    out["loss"].backward(retain_graph=True)
    g_total = model.fc.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    out["ce"].backward()
    torch.testing.assert_close(g_total, model.fc.weight.grad, rtol=0, atol=0)  # fc learns from CE alone


def test_eac_loss_zero_consistency_for_mirrored_symmetric_maps():
    cams = torch.randn(2, 7, 4, 4)
    out = eac_loss(torch.zeros(2, 7), cams, cams.flip(-1), torch.tensor([0, 1]), lam=5.0)
    assert out["consistency"].item() == 0.0
    with pytest.raises(ValueError, match="CAM shapes differ"):
        eac_loss(torch.zeros(2, 7), cams, torch.zeros(2, 7, 3, 4), torch.tensor([0, 1]))


def test_ce_baseline_has_no_consistency_term():
    logits = torch.randn(3, 7)
    y = torch.tensor([0, 1, 2])
    out = ce_loss(logits, y)
    assert out["consistency"].item() == 0.0
    torch.testing.assert_close(out["loss"], F.cross_entropy(logits, y))
