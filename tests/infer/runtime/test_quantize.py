"""int8 path (issue #11): agreement check, refusal, metadata, predictor on int8, bounded ONNX cache, --precision."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from eacfer.infer import onnx_cache
from eacfer.infer.runtime.quantize import QuantizationError, agreement, quantize_checked, read_quantization
from quantize_testutils import SIZE, small_crop_sets, train_tiny_model

pytest_plugins = ["inference_fixtures"]

# the module trains a tiny model once (≈30 s on a quiet 2-core machine, minutes on a loaded one)
pytestmark = pytest.mark.timeout(900)


# -- the agreement check --------------------------------------------------------------------------
def test_agreement_counts_top1_matches_and_largest_probability_difference():
    ref = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    cand = np.array([[0.6, 0.3, 0.1],    # same top-1, |Δ| 0.1
                     [0.1, 0.75, 0.15],  # same top-1, |Δ| 0.05
                     [0.45, 0.3, 0.25],  # top-1 flips 2 -> 0, |Δ| 0.15
                     [0.25, 0.65, 0.1]])  # top-1 flips 0 -> 1, |Δ| 0.25 (the largest)
    a = agreement(ref, cand)
    assert (a.n, a.agree) == (4, 2)
    assert a.agreement == pytest.approx(0.5)
    assert a.max_prob_diff == pytest.approx(0.25)
    same = agreement(ref, ref)
    assert same.agreement == 1.0 and same.max_prob_diff == 0.0


def test_agreement_rejects_mismatched_or_empty_inputs():
    with pytest.raises(ValueError, match="same shape"):
        agreement(np.zeros((3, 7)), np.zeros((2, 7)))
    with pytest.raises(ValueError, match="non-empty"):
        agreement(np.zeros((0, 7)), np.zeros((0, 7)))


def test_nan_output_never_counts_as_agreeing_closely():
    a = agreement(np.array([[0.9, 0.1]]), np.array([[np.nan, np.nan]]))
    assert not a.max_prob_diff <= 1.0


# -- quantise, refuse, record ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("tiny") / "model.pt")


@pytest.fixture(scope="module")
def crop_sets(tiny_pt):
    return small_crop_sets(model=tiny_pt)


@pytest.fixture(scope="module")
def fp32_onnx(tiny_pt) -> bytes:
    from eacfer.checkpoint import load_model
    from eacfer.export import export_onnx_bytes

    net, info = load_model(tiny_pt)
    return export_onnx_bytes(net, info, dynamic_batch=True, with_cams=True)


@pytest.fixture(scope="module")
def int8_onnx(tiny_pt, crop_sets, tmp_path_factory) -> Path:
    """The tiny model exported through `eacfer export --precision int8`'s function (check at 99 %)."""
    from eacfer.infer.runtime.torch_backend import export_int8

    out = tmp_path_factory.mktemp("int8") / "model-int8.onnx"
    export_int8(tiny_pt, out, dynamic_batch=True, with_cams=True, crop_sets=crop_sets)
    return out


def test_refused_when_agreement_falls_short(fp32_onnx, crop_sets):
    with pytest.raises(QuantizationError) as e:
        quantize_checked(fp32_onnx, "model.pt", crop_sets.calibration, crop_sets.checks, min_agreement=1.01)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("model.pt: int8 refused")
    assert "< 101%" in msg and "max |Δp|" in msg  # says why, with the figures


def test_export_int8_writes_nothing_when_refused(tiny_pt, crop_sets, tmp_path):
    from eacfer.infer.runtime.torch_backend import export_int8

    out = tmp_path / "m.onnx"
    with pytest.raises(QuantizationError, match="int8 refused"):
        export_int8(tiny_pt, out, crop_sets=crop_sets, min_agreement=1.01)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_check_result_recorded_in_metadata_and_read_back(int8_onnx, crop_sets):
    import onnx

    from eacfer.infer.runtime.backends import load_classifier

    meta = {p.key: p.value for p in onnx.load(str(int8_onnx)).metadata_props}
    rec = read_quantization(meta)
    assert rec is not None and rec["precision"] == "int8"
    assert set(rec["checks"]) == {"synthetic_test", "portrait"}
    for name, c in rec["checks"].items():
        assert c["n"] == len(crop_sets.checks[name]) and c["agreement"] >= 0.99 and 0 <= c["max_prob_diff"] <= 1
    assert rec["calibration"] == "test calibration crops" and rec["date"][:2] == "20" and rec["min_agreement"] == 0.99
    # the model file's own metadata survives quantisation
    assert json.loads(meta["backbone"]) == "resnet18" and json.loads(meta["input_size"]) == SIZE
    clf = load_classifier(int8_onnx, device="cpu")
    assert clf.precision == "int8" and clf.quantization == rec


def test_int8_keeps_cams(int8_onnx, fp32_onnx, crop_sets):
    from eacfer.infer.runtime.backends import OnnxClassifier

    q = OnnxClassifier.from_file(int8_onnx)
    f = OnnxClassifier(fp32_onnx, "fp32")
    crops = crop_sets.checks["portrait"][:3]
    (_, cq), (_, cf) = q.classify(crops, cams=True), f.classify(crops, cams=True)
    assert q.has_cams and cq.shape == cf.shape and np.isfinite(cq).all()
    # the maps still follow fp32 (within 20 % of their range)
    assert np.abs(cq - cf).max() <= 0.2 * np.abs(cf).max()


def test_predictor_int8_gives_fp32_top1_on_the_portrait(tiny_pt, int8_onnx, face_rgb):
    from eacfer.infer.predictor import Predictor

    with Predictor.from_checkpoint(tiny_pt, device="cpu") as p32, Predictor.from_checkpoint(int8_onnx) as p8:
        assert p8.classifier.precision == "int8" and p32.classifier.precision == "fp32"
        r32, r8 = p32.predict(face_rgb), p8.predict(face_rgb)
    assert len(r32.faces) == len(r8.faces) == 1
    assert r8.faces[0].emotion == r32.faces[0].emotion
    np.testing.assert_allclose(r8.faces[0].probabilities, r32.faces[0].probabilities, atol=0.1)


def test_load_classifier_int8_is_cached_and_refusal_remembered(tiny_pt, crop_sets, monkeypatch, tmp_path):
    from eacfer.infer.runtime import backends, calibration

    monkeypatch.setenv("EACFER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(calibration, "default_crop_sets", lambda *a, **k: crop_sets)
    clf = backends.load_classifier(tiny_pt, device="cpu", precision="int8")
    assert clf.precision == "int8"
    names = sorted(p.name for p in onnx_cache.cache_dir().iterdir())
    assert len(names) == 2 and any("-cams-int8--" in n for n in names)  # fp32 export + int8 model, side by side
    calls = []
    monkeypatch.setattr(calibration, "default_crop_sets", lambda *a, **k: calls.append(1) or crop_sets)
    assert backends.load_classifier(tiny_pt, device="cpu", precision="int8").precision == "int8"
    assert calls == []  # the cached int8 model was used, not rebuilt
    # a threshold the model cannot meet: refused, and the refusal is remembered (no second quantisation)
    for p in onnx_cache.cache_dir().glob("*int8*"):
        p.unlink()
    for _ in range(2):
        with pytest.raises(QuantizationError, match="int8 refused"):
            backends.int8_for_model(tiny_pt, min_agreement=1.01)
    assert calls == [1]


def test_int8_needs_onnxruntime(model_pt):
    from eacfer.infer.runtime.backends import load_classifier

    with pytest.raises(ValueError, match="onnxruntime only"):
        load_classifier(model_pt, device="cpu", backend="torch", precision="int8")
    with pytest.raises(ValueError, match="unknown precision"):
        load_classifier(model_pt, device="cpu", precision="fp16")


# -- the bounded cache ----------------------------------------------------------------------------
def _put(root: Path, key: str, source: str, size: int, age: float, limit: int = 10**9) -> Path:
    p = onnx_cache.store(root, key, source, b"x" * size, limit=limit)
    os.utime(p, (age, age))
    return p


def test_cache_evicts_least_recently_used_first(tmp_path):
    a = _put(tmp_path, "aaaa-t2-cams", "/m/a.pt", 400, age=1000)
    b = _put(tmp_path, "bbbb-t2-cams", "/m/b.pt", 400, age=2000)
    c = _put(tmp_path, "cccc-t2-cams", "/m/c.pt", 400, age=3000)
    assert onnx_cache.lookup(tmp_path, "aaaa-t2-cams") == a  # using a makes it the most recent
    d = onnx_cache.store(tmp_path, "dddd-t2-cams", "/m/d.pt", b"x" * 400, limit=1300)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {a.name, c.name, d.name} and not b.exists()  # b: least recently used
    onnx_cache.evict(tmp_path, 500, keep=d)
    assert [p.name for p in tmp_path.iterdir()] == [d.name]  # the entry just written survives any cap


def test_rewritten_model_replaces_its_cache_entry(tmp_path):
    old = _put(tmp_path, "1111-t2-cams", "/runs/r18/model.pt", 100, age=1000)
    other = _put(tmp_path, "2222-t2-cams", "/runs/other/model.pt", 100, age=1000)
    old8 = _put(tmp_path, "1111-t2-cams-int8", "/runs/r18/model.pt", 50, age=1000)
    new = onnx_cache.store(tmp_path, "3333-t2-cams", "/runs/r18/model.pt", b"y" * 100)
    assert new.exists() and not old.exists()  # same file, new content: one entry, not two
    assert other.exists() and old8.exists()  # other models and the other variant are left alone


def test_cache_cap_from_environment(monkeypatch):
    monkeypatch.setenv("EACFER_CACHE_MAX_MB", "5")
    assert onnx_cache.max_bytes() == 5_000_000
    monkeypatch.setenv("EACFER_CACHE_MAX_MB", "lots")
    assert onnx_cache.max_bytes() == onnx_cache.DEFAULT_MAX_MB * 1_000_000


# -- --precision on every command -----------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["export", "--checkpoint", "m.pt", "--out", "m.onnx"],
    ["predict", "x.jpg", "--checkpoint", "m.pt", "--out", "o"],
    ["video", "x.mp4", "--checkpoint", "m.pt", "--out", "o"],
    ["ui"],
])
def test_precision_option_on_every_command(argv):
    from eacfer.commands.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(argv).precision == "fp32"  # the default until the check passes
    assert parser.parse_args([*argv, "--precision", "int8"]).precision == "int8"
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--precision", "fp16"])


def test_rewriting_a_model_file_keeps_one_cached_export(tmp_path, monkeypatch):
    """Issue #19: each rewrite of model.pt (e.g. by `train --resume`) used to leave another export behind."""
    from eacfer.infer.runtime.backends import load_classifier
    from inference_testutils import save_random_model

    monkeypatch.setenv("EACFER_CACHE_DIR", str(tmp_path / "cache"))
    pt = tmp_path / "run" / "model.pt"
    pt.parent.mkdir()
    for seed in (0, 1):  # the same path, new content
        save_random_model(pt, seed=seed)
        load_classifier(pt, device="cpu")
    files = list(onnx_cache.cache_dir().glob("*.onnx"))
    assert len(files) == 1 and files[0].name.startswith(onnx_cache.file_sha256(pt)[:24])
