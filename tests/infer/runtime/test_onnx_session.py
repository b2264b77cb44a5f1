"""``infer/runtime/onnx_session.py``: session settings, the normaliser, preprocessing and the softmax.

Written from the module's docstrings: ``normaliser`` gives (scale, shift) with ``x·scale − shift ==
(x/255 − mean)/std`` per channel; ``preprocess`` turns uint8 N×S×S×3 RGB into float32 N×3×S×S; ``softmax`` is the
stable softmax of ``logits / temperature`` over the last axis; ``session_options`` honours ``threads`` (else the
cores this process may use) and the settings table (one inter-op thread, sequential, full optimisation, no
spinning); ``create_session`` runs on the CPU and refuses CUDA where onnxruntime has no CUDA provider.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from eacfer.infer.runtime import onnx_session
from eacfer.infer.runtime.onnx_session import (
    SESSION_SETTINGS,
    create_session,
    default_threads,
    normaliser,
    preprocess,
    session_options,
    softmax,
)

TINY_ONNX = Path(__file__).resolve().parents[2] / "fixtures" / "runtime" / "tiny_fer.onnx"  # 48 px, 7 classes

# three different channels, so a swapped channel or a transposed (mean, std) shows
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# -- softmax ------------------------------------------------------------------------------------------------------
def test_softmax_with_temperature_matches_the_hand_computed_value():
    # logits (1, 2, 3) at T = 2: exp(0.5), exp(1), exp(1.5) over their sum
    e = [math.exp(0.5), math.exp(1.0), math.exp(1.5)]
    want = [v / sum(e) for v in e]  # 0.1863, 0.3072, 0.5065
    got = softmax(np.array([[1.0, 2.0, 3.0]]), temperature=2.0)
    np.testing.assert_allclose(got[0], want, rtol=1e-6)
    assert got.dtype == np.float32 and got.shape == (1, 3)
    # T = 1 is the plain softmax, and a lower temperature sharpens the distribution
    plain = softmax(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(plain[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), rtol=1e-6)
    assert softmax(np.array([[1.0, 2.0, 3.0]]), temperature=0.5)[0, 2] > plain[0, 2] > got[0, 2]


def test_softmax_is_over_the_last_axis_and_stable_for_large_logits():
    logits = np.array([[[1e4, 1e4, 1e4 - 2.0], [-1e4, 0.0, -1e4]]])  # exp(1e4 / 1.5) overflows float64 unshifted
    p = softmax(logits, temperature=1.5)
    assert p.shape == (1, 2, 3) and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-6)
    e = np.exp(np.array([0.0, 0.0, -2.0]) / 1.5)
    np.testing.assert_allclose(p[0, 0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(p[0, 1], [0.0, 1.0, 0.0], atol=1e-6)


def test_softmax_leaves_its_input_alone():
    logits = np.array([[4.0, 1.0]], np.float32)
    softmax(logits, temperature=3.0)
    assert logits.tolist() == [[4.0, 1.0]]


# -- normaliser and preprocess ----------------------------------------------------------------------------------
def test_normaliser_is_x_over_255_minus_mean_over_std_per_channel():
    scale, shift = normaliser(MEAN, STD)
    assert scale.shape == shift.shape == (1, 3, 1, 1)
    x = np.arange(256, dtype=np.float32).reshape(1, 1, 1, 256).repeat(3, axis=1)  # every uint8 value, 3 channels
    want = (x / 255.0 - np.reshape(MEAN, (1, 3, 1, 1))) / np.reshape(STD, (1, 3, 1, 1))
    np.testing.assert_allclose(x * scale - shift, want, atol=2e-6)
    # the ends of the range by hand, channel by channel
    for c in range(3):
        assert float(0 * scale[0, c, 0, 0] - shift[0, c, 0, 0]) == pytest.approx(-MEAN[c] / STD[c], abs=1e-6)
        assert float(255 * scale[0, c, 0, 0] - shift[0, c, 0, 0]) == pytest.approx((1 - MEAN[c]) / STD[c],
                                                                                    abs=1e-5)


def test_preprocess_moves_channels_first_and_normalises_each_channel():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(2, 5, 4, 3), dtype=np.uint8)  # H ≠ W: a swapped H/W shows
    crops[1, :, :, 0] = 255  # image 1: red channel saturated
    crops[1, :, :, 2] = 0  # and blue empty
    x = preprocess(crops, *normaliser(MEAN, STD))
    assert x.dtype == np.float32 and x.shape == (2, 3, 5, 4)
    for c in range(3):
        want = (crops[..., c].astype(np.float64) / 255.0 - MEAN[c]) / STD[c]
        np.testing.assert_allclose(x[:, c], want, atol=2e-6)
    np.testing.assert_allclose(x[1, 0], (1 - MEAN[0]) / STD[0], atol=1e-5)  # red stays channel 0 (RGB order)
    np.testing.assert_allclose(x[1, 2], -MEAN[2] / STD[2], atol=1e-5)


# -- session options --------------------------------------------------------------------------------------------
def test_session_options_honour_threads_and_the_default_settings():
    import onnxruntime as ort

    opts = session_options(3)
    assert opts.intra_op_num_threads == 3
    assert opts.inter_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.enable_mem_pattern and opts.enable_cpu_mem_arena
    # no spinning: spinning threads starve the detector and the encoder beside the classifier
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert session_options(1).intra_op_num_threads == 1


def test_session_options_without_threads_use_the_cores_this_process_may_use(monkeypatch):
    if hasattr(os, "sched_getaffinity"):
        monkeypatch.setattr(onnx_session.os, "sched_getaffinity", lambda pid: {0, 2, 5})
        assert default_threads() == 3
    assert session_options(None).intra_op_num_threads == default_threads() >= 1


def test_session_options_follow_a_settings_dict():
    import onnxruntime as ort

    custom = {**SESSION_SETTINGS["default"], "optimization": "basic", "execution": "parallel", "inter_op": 2,
              "spinning": True, "mem_pattern": False, "cpu_arena": False, "denormal_as_zero": True}
    opts = session_options(2, custom)
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert opts.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (2, 2)
    assert not opts.enable_mem_pattern and not opts.enable_cpu_mem_arena
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert opts.get_session_config_entry("session.set_denormal_as_zero") == "1"
    with pytest.raises(KeyError):
        session_options(1, "no-such-settings")


# -- sessions ---------------------------------------------------------------------------------------------------
def test_create_session_runs_the_model_on_the_cpu_with_the_threads_asked():
    sess = create_session(TINY_ONNX.read_bytes(), threads=2)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert sess.get_session_options().intra_op_num_threads == 2
    crops = np.random.default_rng(1).integers(0, 256, size=(2, 48, 48, 3), dtype=np.uint8)
    (logits,) = sess.run(None, {sess.get_inputs()[0].name: preprocess(crops, *normaliser(MEAN, STD))})
    assert logits.shape == (2, 7)
    p = softmax(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    # the same file by path gives the same numbers
    (again,) = create_session(str(TINY_ONNX), threads=1).run(
        None, {"input": preprocess(crops, *normaliser(MEAN, STD))})
    np.testing.assert_allclose(again, logits, atol=1e-5)


def test_create_session_refuses_cuda_without_the_cuda_provider(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="no CUDA provider"):
        create_session(TINY_ONNX.read_bytes(), device="cuda:0")


def test_create_session_puts_cuda_first_when_asked_and_available(monkeypatch):
    import onnxruntime as ort

    seen = {}

    def fake_session(model, sess_options, providers):
        seen.update(providers=providers, threads=sess_options.intra_op_num_threads)
        return "session"

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    assert create_session(b"model", threads=2, device="cuda") == "session"
    assert seen == {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"], "threads": 2}
    create_session(b"model", threads=1, device="cpu")
    assert seen["providers"] == ["CPUExecutionProvider"]  # CUDA only when asked
