"""ONNX export: metadata, parity with torch (logits and CAMs), atomic refusal, CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from eacfer import export as export_mod
from eacfer.checkpoint import load_model
from eacfer.commands.cli import main
from eacfer.infer.runtime.backends import OnnxClassifier

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, predictor, face_rgb, exported_onnx, …


@pytest.fixture(scope="module")
def cams_onnx(exported_onnx):
    """The session's export with a dynamic batch and CAMs, and export_onnx's report on it."""
    return exported_onnx, json.loads(exported_onnx.with_suffix(".json").read_text())


def test_metadata_and_signature(cams_onnx):
    path, result = cams_onnx
    assert result["max_abs_diff"] <= 1e-4 and set(result["diffs"]) == {"logits", "cams", "cams_scaled"}
    m = onnx.load(str(path))
    meta = {p.key: json.loads(p.value) for p in m.metadata_props}
    assert meta["format"] == "eacfer-model" and meta["backbone"] == "mobilenet_v2"
    assert meta["input_size"] == 64 and len(meta["class_names"]) == 7 and len(meta["mean"]) == 3
    assert meta["export"]["with_cams"] is True
    assert "face_size" in meta and meta["face_size"] is None  # the test model records none
    assert [o.name for o in m.graph.output] == ["logits", "cams"]


def test_onnx_cams_match_torch(cams_onnx, model_pt):
    path, _ = cams_onnx
    net, _ = load_model(model_pt)
    clf = OnnxClassifier.from_file(path)
    x = torch.randn(4, 3, 64, 64)
    logits, cams = clf.session.run(["logits", "cams"], {"input": x.numpy()})
    with torch.inference_mode():
        rl, rc = net.forward_with_cams(x)
    assert np.abs(logits - rl.numpy()).max() < 1e-4
    assert np.abs(cams - rc.numpy()).max() < 1e-4 * max(1.0, float(rc.abs().max()))
    assert rl.std() > 0.1 and float(rc.abs().max()) > 0.1  # outputs carry signal, not ~0
    assert cams.shape == (4, 7, 2, 2)


def test_parity_failure_writes_nothing(model_pt, exported_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "export_onnx_bytes", lambda *a, **k: exported_onnx.read_bytes())
    monkeypatch.setattr(export_mod, "check_parity", lambda *a, **k: {"logits": 0.5})
    out = tmp_path / "bad.onnx"
    with pytest.raises(export_mod.ExportError, match="disagrees"):
        export_mod.export_onnx(model_pt, out)
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_cli_export_prints_difference(model_pt, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", "--checkpoint", str(model_pt), "--out", str(out), "--opset", "17"]) == 0
    text = capsys.readouterr().out
    assert "max |diff|" in text and out.exists()
    m = onnx.load(str(out))
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # fixed batch by default


@pytest.mark.parametrize(
    "args, message",
    [
        (["--opset", "3"], "opset 3"),
        (["--out-suffix", ".txt"], "should end in .onnx"),
        (["--checkpoint-missing"], "not found"),
    ],
)
def test_cli_export_bad_arguments(model_pt, tmp_path, capsys, args, message):
    ckpt, out = str(model_pt), str(tmp_path / "m.onnx")
    extra = []
    if args == ["--out-suffix", ".txt"]:
        out = str(tmp_path / "m.txt")
    elif args == ["--checkpoint-missing"]:
        ckpt = str(tmp_path / "nope.pt")
    else:
        extra = args
    assert main(["export", "--checkpoint", ckpt, "--out", out, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
