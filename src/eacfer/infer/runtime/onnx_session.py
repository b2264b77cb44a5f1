"""onnxruntime sessions for the face classifier: session settings and input preprocessing.

Shared by the classifier backend (:mod:`eacfer.infer.runtime.backends`), the int8 path
(:mod:`eacfer.infer.runtime.quantize`) and ``benchmarks/classifier_precision.py``, so that all three run the model
the same way.

Session settings (``SESSION_SETTINGS["default"]``), each alternative measured with
``benchmarks/classifier_precision.py --sweep`` on the 2-core machine (figures in ``benchmarks/RESULTS.md``,
measured under heavy load: none of the alternatives was faster for both backbones at batch 1 and 5, so the
settings are those of 0.1): full graph optimisation
(``ORT_ENABLE_ALL``: constant folding, Conv+activation fusion and the NCHWc layout of the x86 kernels;
``EXTENDED`` was slower), sequential execution (the graph is a chain; the parallel executor was slower),
one inter-op thread, intra-op threads = the cores this process may use (one thread was slower), no
spinning (spinning was slower under load, and spinning worker threads keep both cores busy after each run,
starving the detector and the video encoder running beside the classifier), memory pattern and arena on
(turning the pattern off gained nothing; for memory, issue #25, ``benchmarks/runtime_memory.py``: with the arena
off a MobileNetV2 session's peak RSS rose, 145 against 108 MB, and a ResNet-50's stayed at 398 MB; the pattern off
saved 2 MB at most — so both stay on). Flushing denormals to zero is available
(``"denormal_as_zero"``) but showed no gain above the noise, so it is off.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: the settings a classifier session uses (``"default"``) and, for comparisons, the pre-0.2 ones (``"legacy"``)
SESSION_SETTINGS: dict[str, dict[str, Any]] = {
    "legacy": {"optimization": "all", "execution": "sequential", "inter_op": 1, "spinning": False,
               "mem_pattern": True, "cpu_arena": True, "denormal_as_zero": False},
    "default": {"optimization": "all", "execution": "sequential", "inter_op": 1, "spinning": False,
                "mem_pattern": True, "cpu_arena": True, "denormal_as_zero": False},
}


def default_threads() -> int:
    """CPU cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def session_options(threads: int | None = None, settings: str | dict[str, Any] = "default") -> Any:
    """An ``onnxruntime.SessionOptions`` for the classifier (see the module docstring for the choices).

    Example:
        >>> session_options(1).intra_op_num_threads  # doctest: +SKIP
        1
    """
    import onnxruntime as ort

    s = SESSION_SETTINGS[settings] if isinstance(settings, str) else settings
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = levels[s["optimization"]]
    opts.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if s["execution"] == "parallel"
                           else ort.ExecutionMode.ORT_SEQUENTIAL)
    opts.intra_op_num_threads = int(threads or default_threads())
    opts.inter_op_num_threads = int(s["inter_op"])
    opts.enable_mem_pattern = bool(s["mem_pattern"])
    opts.enable_cpu_mem_arena = bool(s["cpu_arena"])
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if s["spinning"] else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if s["spinning"] else "0")
    if s.get("denormal_as_zero"):
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    return opts


def create_session(model: bytes | str, threads: int | None = None, device: str = "cpu",
                   settings: str | dict[str, Any] = "default") -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU (or CUDA when ``device`` says so and it is installed).

    Example:
        >>> sess = create_session(open("model.onnx", "rb").read())  # doctest: +SKIP
    """
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError("onnxruntime has no CUDA provider here (install onnxruntime-gpu or use --backend torch)")
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(model, sess_options=session_options(threads, settings), providers=providers)


def normaliser(mean: Any, std: Any) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) with ``x·scale − shift == (x/255 − mean)/std`` (one multiply-add per pixel)."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    return (1.0 / (255.0 * std)).reshape(1, 3, 1, 1), (mean / std).reshape(1, 3, 1, 1)


def preprocess(crops: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """uint8 N×S×S×3 RGB crops → float32 N×3×S×S model input.

    Example:
        >>> preprocess(np.zeros((1, 4, 4, 3), np.uint8), *normaliser([0.5] * 3, [0.5] * 3))[0, 0, 0, 0]
        np.float32(-1.0)
    """
    x = crops.transpose(0, 3, 1, 2).astype(np.float32)
    x *= scale
    x -= shift
    return x


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Numerically stable softmax over the last axis of ``logits / temperature``.

    This is where every runtime (torch, onnxruntime fp32 and int8, the worker pool) turns a model's
    logits into probabilities, so a model file's fitted temperature (``eacfer calibrate``) applies to all of
    them; ``temperature=1`` is the plain softmax.

    Example:
        >>> softmax(np.array([[0.0, 0.0]])).tolist()
        [[0.5, 0.5]]
        >>> np.round(softmax(np.array([[2.0, 0.0]]), temperature=2.0).astype(float), 4).tolist()
        [[0.7311, 0.2689]]
    """
    z = np.asarray(logits)
    if temperature != 1.0:
        z = z / np.asarray(temperature, dtype=z.dtype)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
