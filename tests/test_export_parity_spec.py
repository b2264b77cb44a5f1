"""The ONNX parity check (export.py ``check_parity`` / ``parity_ok``) must catch a wrong ONNX model.

Documented behaviour: run onnxruntime and torch on the same random inputs; the parity of an output is the
maximum absolute difference between them; logits are judged absolutely, CAMs relative to their scale
(``cams_scaled = max|Δ| / max(1, max|cam|)``); NaN fails; the export is refused when parity fails.
These tests build the ONNX models themselves (torch.onnx, one input ``input``, outputs ``logits`` [+ ``cams``]),
so they hold whatever the exporter does, and never mock the check.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from eacfer.export import PARITY_TOLERANCE, check_parity, parity_ok
from eacfer.models.eac import EACNet

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)

SIZE = 16


def _tiny_net(seed: int = 0) -> EACNet:
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2, padding=1))
    net = EACNet(trunk, num_features=6, num_classes=3).eval()
    with torch.no_grad():  # small weights: |CAM| < 1, so cams_scaled == the absolute CAM difference
        for p in net.parameters():
            p.mul_(0.1)
    return net


class _Wrong(nn.Module):
    """Exports ``net`` with deliberate errors: a logit offset, a CAM offset, or NaN logits."""

    def __init__(self, net: EACNet, logit_offset: float = 0.0, cam_offset: float = 0.0, nan: bool = False):
        super().__init__()
        self.net, self.logit_offset, self.cam_offset, self.nan = net, logit_offset, cam_offset, nan

    def forward(self, x: torch.Tensor):
        logits, cams = self.net.forward_with_cams(x)
        logits = logits + self.logit_offset
        if self.nan:
            logits = logits * torch.tensor(float("nan"))
        return logits, cams + self.cam_offset


def _onnx(module: nn.Module, with_cams: bool = True, dynamic: bool = True) -> bytes:
    outputs = ["logits", "cams"] if with_cams else ["logits"]

    class Head(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            out = self.m(x) if isinstance(self.m, _Wrong) else self.m.forward_with_cams(x)
            return out if with_cams else out[0]

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Head(module).eval(), (torch.zeros(1, 3, SIZE, SIZE),), buf, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=outputs,
                          dynamic_axes={n: {0: "batch"} for n in ["input", *outputs]} if dynamic else None)
    return buf.getvalue()


@pytest.fixture(scope="module")
def net() -> EACNet:
    return _tiny_net()


def test_faithful_model_passes(net):
    diffs = check_parity(net, _onnx(net), SIZE)
    assert set(diffs) == {"logits", "cams", "cams_scaled"}
    assert diffs["logits"] < 1e-5 and diffs["cams"] < 1e-5
    assert parity_ok(diffs)


def test_faithful_logits_only_model_passes_with_a_fixed_batch(net):
    diffs = check_parity(net, _onnx(net, with_cams=False, dynamic=False), SIZE)
    assert set(diffs) == {"logits"} and diffs["logits"] < 1e-5 and parity_ok(diffs)


@pytest.mark.parametrize("offset", [0.5, -0.02, 3e-4])
def test_wrong_logits_fail_and_the_difference_is_the_max_abs_diff(net, offset):
    diffs = check_parity(net, _onnx(_Wrong(net, logit_offset=offset)), SIZE)
    assert diffs["logits"] == pytest.approx(abs(offset), rel=1e-3, abs=2e-6)
    assert diffs["cams"] < 1e-5
    assert not parity_ok(diffs)


def test_model_with_other_weights_fails(net):
    other = _tiny_net(seed=1)
    diffs = check_parity(net, _onnx(other), SIZE)
    assert diffs["logits"] > 1e-3 and diffs["cams"] > 1e-3
    assert not parity_ok(diffs)


def test_wrong_cams_fail_relative_to_their_scale(net):
    diffs = check_parity(net, _onnx(_Wrong(net, cam_offset=0.01)), SIZE)
    assert diffs["logits"] < 1e-5
    assert diffs["cams"] == pytest.approx(0.01, rel=1e-3)
    assert diffs["cams_scaled"] == pytest.approx(0.01, rel=1e-3)  # |cam| < 1: divided by max(1, ·) = 1
    assert not parity_ok(diffs)


def test_cams_are_judged_relative_to_large_cams():
    net = _tiny_net()
    with torch.no_grad():
        net.fc.weight.mul_(1e5)  # CAMs in the tens: an absolute 1e-3 is within float32 rounding
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        scale = float(net.forward_with_cams(x)[1].abs().max())
    assert scale > 20
    diffs = check_parity(net, _onnx(_Wrong(net, cam_offset=1e-3)), SIZE)
    assert diffs["cams"] == pytest.approx(1e-3, rel=0.05)
    assert 1e-3 / (scale * 20) < diffs["cams_scaled"] < 1e-3 / scale * 20  # scaled by the (input-dependent) max
    assert diffs["cams_scaled"] < diffs["cams"]


def test_nan_outputs_fail(net):
    diffs = check_parity(net, _onnx(_Wrong(net, nan=True)), SIZE)
    assert np.isnan(diffs["logits"])
    assert not parity_ok(diffs)


def test_parity_ok_thresholds():
    assert parity_ok({"logits": PARITY_TOLERANCE})
    assert not parity_ok({"logits": PARITY_TOLERANCE * 1.01})
    assert parity_ok({"logits": 0.0, "cams": 5.0, "cams_scaled": PARITY_TOLERANCE})
    assert not parity_ok({"logits": 0.0, "cams": 0.0, "cams_scaled": PARITY_TOLERANCE * 1.01})
    assert not parity_ok({"logits": float("nan")})
    assert not parity_ok({"logits": 0.0, "cams_scaled": float("nan")})
    assert parity_ok({"logits": 0.05}, tolerance=0.1) and not parity_ok({"logits": 0.2}, tolerance=0.1)
    assert 1e-6 <= PARITY_TOLERANCE <= 1e-3  # the documented 1e-4 order of magnitude


def test_check_is_reproducible_and_seeded(net):
    """The same call reports the same numbers (fixed seed 0 by default); another seed draws other inputs."""
    wrong = _onnx(_tiny_net(seed=1))
    a = check_parity(net, wrong, SIZE)
    assert check_parity(net, wrong, SIZE) == a
    assert check_parity(net, wrong, SIZE, seed=0) == a
    assert check_parity(net, wrong, SIZE, seed=5) != a


class _BatchOffset(nn.Module):
    """``net`` with every logit offset by 0.01·N (N = the batch size it runs at), so the parity reports N."""

    def __init__(self, net: EACNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        logits, cams = self.net.forward_with_cams(x)
        n = torch.ones_like(x[:, :1, :1, :1]).sum()  # traced as a shape-dependent op, not a constant
        return logits + 0.01 * n, cams


class _BatchMixing(nn.Module):
    """An export bug only a batch of several inputs shows: each sample gets the logits of its neighbour."""

    def __init__(self, net: EACNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        logits, cams = self.net.forward_with_cams(x)
        return logits.roll(1, dims=0), cams


def _onnx_module(module: nn.Module, dynamic: bool = True) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, 3, SIZE, SIZE),), buf, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits", "cams"],
                          dynamic_axes={n: {0: "batch"} for n in ["input", "logits", "cams"]} if dynamic else None)
    return buf.getvalue()


def test_inputs_are_a_batch_of_two_by_default_or_the_models_fixed_batch(net):
    """Documented: ``batch`` random inputs (2 by default); a model exported with a fixed batch runs at that batch."""
    dynamic = _onnx_module(_BatchOffset(net))
    assert check_parity(net, dynamic, SIZE)["logits"] == pytest.approx(0.02, abs=1e-5)
    assert check_parity(net, dynamic, SIZE, batch=5)["logits"] == pytest.approx(0.05, abs=1e-5)
    fixed = _onnx_module(_BatchOffset(net), dynamic=False)  # exported at batch 1
    assert check_parity(net, fixed, SIZE, batch=5)["logits"] == pytest.approx(0.01, abs=1e-5)


def test_batch_mixing_export_fails_by_default():
    net = _tiny_net()
    with torch.no_grad():
        net.fc.weight.mul_(100.0)  # logits that differ between inputs by far more than the tolerance
    diffs = check_parity(net, _onnx_module(_BatchMixing(net)), SIZE)
    assert diffs["logits"] > 1e-3 and diffs["cams_scaled"] < 1e-5
    assert not parity_ok(diffs)


def test_check_runs_on_a_provider_onnxruntime_has(net):
    """The CPU provider is named exactly: onnxruntime warns and falls back when asked for a provider it lacks."""
    data = _onnx(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diffs = check_parity(net, data, SIZE)
    assert parity_ok(diffs)
