"""The committed ``tests/fixtures/runtime/tiny_fer.onnx`` (the model of ``.ci/runtime_check``, issue #25) is
what its generator ``make_tiny_fer.py`` makes: the metadata its rules say, the generator's weights, small
enough to commit, and accepted by the runtime (``Predictor.from_checkpoint``). A change to the model-file
metadata rules or to the generator that the committed file no longer meets fails here, not in CI's venv.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

RUNTIME = Path(__file__).resolve().parents[1] / "fixtures" / "runtime"
FIXTURE = RUNTIME / "tiny_fer.onnx"
FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("make_tiny_fer", RUNTIME / "make_tiny_fer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def session():
    import onnxruntime as ort

    return ort.InferenceSession(FIXTURE.read_bytes(), providers=["CPUExecutionProvider"])


def test_fixture_is_small_enough_to_commit():
    assert 1_000 < FIXTURE.stat().st_size <= 200_000


def test_fixture_metadata_is_what_the_generator_declares(generator, session):
    from eacfer.modelinfo import read_onnx_metadata

    info, export_info = read_onnx_metadata(session.get_modelmeta().custom_metadata_map, str(FIXTURE))
    for key, value in generator.expected_info().items():
        assert getattr(info, key) == value, key
    assert export_info["with_cams"] is False and 7 <= export_info["opset"] <= 23


def test_fixture_graph_is_an_eacfer_classifier(generator, session):
    from eacfer.export import INPUT_NAME

    (inp,), outs = session.get_inputs(), session.get_outputs()
    size = generator.INPUT_SIZE
    assert inp.name == INPUT_NAME and inp.shape[1:] == [3, size, size]
    assert [o.name for o in outs] == ["logits"] and outs[0].shape[1] == len(generator.expected_info()["class_names"])
    # a dynamic batch: the worker pool and video batches send several crops at once
    x = np.random.default_rng(0).standard_normal((3, 3, size, size)).astype(np.float32)
    assert session.run(None, {INPUT_NAME: x})[0].shape == (3, 7)


def test_fixture_weights_are_the_generators(generator, session):
    import torch

    from eacfer.export import INPUT_NAME

    x = np.random.default_rng(1).standard_normal((2, 3, generator.INPUT_SIZE, generator.INPUT_SIZE))
    x = x.astype(np.float32)
    with torch.no_grad():
        expected = generator.build_net()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {INPUT_NAME: x})[0], expected, atol=1e-5)


def test_runtime_accepts_the_fixture():
    from eacfer.infer.predictor import Predictor

    p = Predictor.from_checkpoint(str(FIXTURE), device="cpu")
    try:
        assert p.input_size == 48 and len(p.class_names) == 7
        r = p.predict(FACES / "grace_hopper.jpg")
        assert len(r.faces) == 1
        probs = r.faces[0].probabilities
        assert probs.shape == (7,) and abs(float(probs.sum()) - 1.0) < 1e-5
        assert r.faces[0].emotion in p.class_names
    finally:
        p.close()
