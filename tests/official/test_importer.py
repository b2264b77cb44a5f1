"""Official EAC checkpoints import into eacfer and give the same logits and CAMs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from caffe_reference import OfficialLayoutEAC
from eacfer.checkpoint import load_model
from eacfer.official import convert_official_state_dict, import_official_checkpoint


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A state_dict in the official layout, and the official forward computed by an independent reference.

    The reference (tests/caffe_reference.py) is written from the published Caffe ResNet-50, not from
    eacfer's network, so the import is checked against something eacfer did not build (non-trivial BN
    statistics, so a mis-mapped key would show).
    """
    torch.manual_seed(0)
    m = OfficialLayoutEAC(num_classes=7, seed=0).eval()
    path = tmp_path_factory.mktemp("official") / "eac.pth"
    torch.save({f"module.{k}": v for k, v in m.state_dict_official().items()}, path)  # as saved through DataParallel
    return m, path


def test_imported_model_matches_official_forward(official, tmp_path):
    m, path = official
    out = tmp_path / "model.pt"
    import_official_checkpoint(path, out)
    net, info = load_model(out)
    assert info.backbone == "resnet50_msceleb" and info.input_size == 224
    assert info.face_size == 100  # the official code trains on RAF-DB's 100×100 aligned faces
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref_logits, ref_cams = m(x)
        logits, cams = net.forward_with_cams(x)
    assert torch.allclose(logits, ref_logits, atol=1e-4)
    assert torch.allclose(cams, ref_cams, atol=1e-3)


def test_convert_rejects_foreign_state_dict():
    with pytest.raises(ValueError, match=r"1 unmatched key \(conv9.weight\); .* missing keys"):
        convert_official_state_dict({"conv9.weight": torch.zeros(1), "fc.weight": torch.zeros(7, 2048), "fc.bias": torch.zeros(7)})


def test_cli_import_official(official, tmp_path):
    _, path = official
    out = tmp_path / "m.pt"
    r = subprocess.run(
        [sys.executable, "-m", "eacfer", "weights", "import-official", str(path), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert out.is_file()
