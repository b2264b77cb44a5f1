"""Classifier backends: torch vs onnxruntime agreement, preprocessing, safe loading, ONNX checks, cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eacfer.checkpoint import load_model
from eacfer.data.transforms import EvalTransform
from eacfer.infer.runtime.backends import OnnxClassifier, cache_dir, load_classifier
from eacfer.infer.runtime.torch_backend import TorchClassifier
from eacfer.modelinfo import CheckpointError
from inference_testutils import write_hostile_pt

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, predictor, face_rgb, exported_onnx, …


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)


def test_torch_preprocessing_matches_eval_transform(model_pt, crops):
    net, info = load_model(model_pt)
    clf = TorchClassifier(net, info, "cpu")
    probs, cams = clf.classify(crops, cams=True)
    tf = EvalTransform(info.input_size, info.mean, info.std)
    with torch.inference_mode():
        ref = torch.softmax(net(torch.stack([tf(c) for c in crops])), 1).numpy()
    np.testing.assert_allclose(probs, ref, atol=2e-5)  # same maths, other float32 rounding order
    assert probs.shape == (3, 7) and cams.shape[:2] == (3, 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_onnxruntime_matches_torch(model_pt, crops):
    ort_clf = load_classifier(model_pt, device="cpu")
    assert ort_clf.backend == "onnxruntime" and ort_clf.has_cams
    torch_clf = load_classifier(model_pt, device="cpu", backend="torch")
    p1, c1 = ort_clf.classify(crops, cams=True)
    p2, c2 = torch_clf.classify(crops, cams=True)
    np.testing.assert_allclose(p1, p2, atol=1e-5)
    np.testing.assert_allclose(c1, c2, atol=1e-4 * max(1.0, float(np.abs(c2).max())))
    assert probs_differ(p1)
    # single crop (H×W×3) is accepted as a batch of one
    np.testing.assert_allclose(ort_clf.classify(crops[0])[0], p1[:1], atol=1e-6)


def test_export_is_cached_by_content_hash(model_pt, inference_cache):
    # the cache is shared by the session's tests (in any order under xdist): an entry is named by the model
    # file's content hash, so look at this model's entries only
    from eacfer.utils.integrity import file_sha256

    key = file_sha256(model_pt)[:24]
    load_classifier(model_pt, device="cpu")
    files = [f for f in cache_dir().glob("*.onnx") if f.name.startswith(key)]
    assert len(files) == 1 and str(inference_cache) in str(files[0])
    before = files[0].stat().st_ino
    load_classifier(model_pt, device="cpu")
    # reused, not exported again (an atomic rewrite would make a new inode; use only touches the mtime, for LRU)
    assert [f for f in cache_dir().glob("*.onnx") if f.name.startswith(key)] == files
    assert files[0].stat().st_ino == before


def test_wrong_crop_shape_is_a_clear_error(model_pt):
    clf = load_classifier(model_pt, device="cpu")
    with pytest.raises(ValueError, match="64×64×3 uint8"):
        clf.classify(np.zeros((1, 32, 32, 3), np.uint8))


def test_hostile_pt_never_runs(tmp_path):
    # the payload is live: plain unpickling does create its marker…
    probe = tmp_path / "probe"
    torch.load(write_hostile_pt(tmp_path / "probe.pt", probe), weights_only=False)
    assert probe.exists()
    # …but no backend ever runs it
    marker = tmp_path / "pwned"
    bad = write_hostile_pt(tmp_path / "evil.pt", marker)
    for backend in ("onnxruntime", "torch"):
        with pytest.raises(CheckpointError, match="refused"):
            load_classifier(bad, device="cpu", backend=backend)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
def test_truncated_model_files(model_pt, exported_onnx_b1, tmp_path, suffix):
    src = (model_pt if suffix == ".pt" else exported_onnx_b1).read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(src[: len(src) // 3])
    with pytest.raises(CheckpointError, match=r"cut\.(pt|onnx): .*(truncated|corrupt)"):
        load_classifier(bad, device="cpu")
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        load_classifier(empty, device="cpu")


def test_onnx_without_metadata_or_wrong_shape(exported_onnx, tmp_path):
    import onnx

    m = onnx.load(str(exported_onnx))
    meta = {p.key: p.value for p in m.metadata_props}
    del m.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(m.SerializeToString())
    with pytest.raises(CheckpointError, match="without eacfer metadata"):
        load_classifier(plain)
    # metadata says 32 px, the graph takes 64 px
    for key, value in {**meta, "input_size": json.dumps(32)}.items():
        prop = m.metadata_props.add()
        prop.key, prop.value = key, value
    lying = tmp_path / "lying.onnx"
    lying.write_bytes(m.SerializeToString())
    with pytest.raises(CheckpointError, match="does not match the metadata"):
        load_classifier(lying)
    # metadata from a stranger's tool
    del m.metadata_props[:]
    prop = m.metadata_props.add()
    prop.key, prop.value = "format", "{not json"
    odd = tmp_path / "odd.onnx"
    odd.write_bytes(m.SerializeToString())
    with pytest.raises(CheckpointError, match="malformed eacfer metadata"):
        load_classifier(odd)


def test_fixed_batch_onnx_runs_face_by_face(model_pt, exported_onnx_b1, crops):
    clf = OnnxClassifier.from_file(exported_onnx_b1)
    assert clf.fixed_batch == 1 and not clf.has_cams
    probs, _ = clf.classify(crops)
    ref, _ = load_classifier(model_pt, backend="torch", device="cpu").classify(crops)
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    with pytest.raises(ValueError, match="--with-cams"):
        clf.classify(crops, cams=True)


def test_argument_errors(model_pt, tmp_path):
    with pytest.raises(ValueError, match="unknown backend"):
        load_classifier(model_pt, backend="tensorrt")
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown model file type"):
        load_classifier(tmp_path / "m.bin")
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "missing.pt")


def test_cuda_request_without_a_gpu_is_a_clear_error(model_pt, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on machines with a GPU
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        load_classifier(model_pt, device="cuda")


def test_onnx_device_is_settled_by_onnxruntime_not_torch(exported_onnx, monkeypatch):
    """An .onnx model never asks torch about CUDA (issue #25): `cuda` needs onnxruntime's CUDA provider,
    `auto` falls back to the CPU without it, and a device that is neither is refused before any file is read."""
    import onnxruntime as ort

    import eacfer.infer.runtime.backends as backends

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(backends, "_may_have_cuda", lambda: True)  # as on a GPU machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: (_ for _ in ()).throw(AssertionError("asked torch")))
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        load_classifier(exported_onnx, device="cuda")
    assert load_classifier(exported_onnx, device="auto").device == "cpu"
    with pytest.raises(ValueError, match="--device must be auto, cpu or cuda"):
        load_classifier(exported_onnx, device="tpu")


def test_no_cache_dir_still_works(model_pt, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EACFER_CACHE_DIR", str(blocker))  # cache folder cannot be created
    clf = load_classifier(model_pt, device="cpu")
    assert clf.backend == "onnxruntime"
    probs, _ = clf.classify(np.zeros((2, clf.info.input_size, clf.info.input_size, 3), np.uint8))
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert blocker.is_file() and blocker.read_text() == "not a folder"  # the blocking file is left alone


def probs_differ(p: np.ndarray) -> bool:
    """The test model's outputs depend on the input (not a constant softmax of the bias)."""
    return float(np.abs(p[0] - p[1]).max()) > 1e-3


# -- misleading model-file errors (issue #30 item 9): one line, the file, and what it really is -----------------
def _error(path, **kw) -> str:
    with pytest.raises(CheckpointError) as e:
        load_classifier(path, device="cpu", **kw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
def test_a_photo_renamed_as_a_model_is_called_a_photo(suffix, face_rgb, tmp_path):
    from PIL import Image

    fake = tmp_path / f"fake{suffix}"
    Image.fromarray(face_rgb).save(fake, format="JPEG")
    msg = _error(fake)
    assert "not a model file" in msg and "JPEG image" in msg
    assert "pickled" not in msg and "corrupt" not in msg  # it is neither hostile nor damaged


def test_text_renamed_as_a_checkpoint_is_not_a_model_file(tmp_path):
    (tmp_path / "notes.pt").write_text("hello, these are my notes")
    assert "not a model file" in _error(tmp_path / "notes.pt")


def test_a_run_folder_as_checkpoint_points_to_its_model_file(model_pt, tmp_path):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(model_pt, run / "model.pt")
    msg = _error(run)
    assert "is a folder" in msg and f"did you mean {run / 'model.pt'}?" in msg
    assert "unknown model file type" not in msg
    (tmp_path / "empty_run").mkdir()
    assert "holds no model file" in _error(tmp_path / "empty_run")


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_a_truncated_model_file_says_so_in_whole_sentences(model_pt, tmp_path, fraction):
    cut = tmp_path / "cut.pt"
    data = model_pt.read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    for kw in ({}, {"backend": "torch"}):
        msg = _error(cut, **kw)
        assert "truncated" in msg
        assert msg.rstrip().endswith((".", "?", ")")), msg  # not cut in the middle of a sentence


def test_first_sentence_keeps_whole_sentences():
    from eacfer.modelinfo import first_sentence

    miniz = ("PytorchStreamReader failed reading zip archive: failed finding central directory. This is an "
             "internal miniz error. If you are seeing this error, there is a high likelihood that your")
    assert first_sentence(miniz) == "PytorchStreamReader failed reading zip archive: failed finding central directory."
    long = "word " * 100
    assert first_sentence(long, 50).endswith("word …") and len(first_sentence(long, 50)) <= 52
    assert first_sentence("") == ""
