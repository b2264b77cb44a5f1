"""ONNX export of an eacfer model, with its metadata and a parity check against torch.

Exporter choice: torch's legacy TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``).
With torch 2.14 it still works, needs no extra dependency (the ``dynamo=True`` exporter needs
``onnxscript``) and exports EACNet (plain convolutions, pooling, a linear layer and one einsum) exactly:
measured max |Δlogit| ≈ 1e-9–1e-6 against eager torch. It emits a DeprecationWarning that we silence here.

The graph has one input ``input`` (N×3×S×S float32, normalised with the model's own mean/std) and the
output ``logits`` (N×K), plus ``cams`` (N×K×h×w) with ``with_cams``. The model file's metadata
(``format``, ``backbone``, ``class_names``, ``input_size``, ``mean``, ``std``, …) travels as ONNX
``metadata_props`` with JSON-encoded values, so an ``.onnx`` is as self-describing as a ``model.pt``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eacfer.checkpoint import load_model
from eacfer.modelinfo import INPUT_NAME, MODEL_FORMAT, MODEL_FORMAT_VERSION, ModelInfo
from eacfer.utils.atomic import atomic_path

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-4


class ExportError(ValueError):
    """Export failed or the exported graph disagrees with torch."""


class _WithCams(torch.nn.Module):
    """Wrap EACNet so that the traced graph returns ``(logits, cams)``."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.forward_with_cams(x)


def metadata_for(info: ModelInfo, with_cams: bool, opset: int) -> dict[str, str]:
    """ONNX ``metadata_props`` for a model: every model-file field, JSON-encoded."""
    from eacfer import __version__

    fields: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "backbone": info.backbone,
        "num_classes": info.num_classes,
        "class_names": list(info.class_names),
        "input_size": info.input_size,
        "mean": list(info.mean),
        "std": list(info.std),
        "train_config": info.train_config,
        "metrics": info.metrics,
        "eacfer_version": info.eacfer_version or __version__,
        "face_size": info.face_size,
        "face_margin": info.face_margin,
        "face_shift": info.face_shift,
        "provenance": info.provenance,
        "temperature": info.temperature,
        "calibration": info.calibration,
        "export": {"exporter": "torch.onnx legacy (dynamo=False)", "opset": opset, "with_cams": with_cams,
                   "torch": torch.__version__},
    }
    return {k: json.dumps(v, default=str) for k, v in fields.items()}


def export_onnx_bytes(
    net: torch.nn.Module,
    info: ModelInfo,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    with_cams: bool = False,
) -> bytes:
    """Export ``net`` (an EACNet in eval mode) to an in-memory ONNX model carrying ``info`` as metadata.

    Example:
        >>> data = export_onnx_bytes(net, info, with_cams=True)  # doctest: +SKIP
    """
    import onnx

    net = net.to("cpu").eval()
    module = _WithCams(net) if with_cams else net
    outputs = ["logits", "cams"] if with_cams else ["logits"]
    dyn = {name: {0: "batch"} for name in [INPUT_NAME, *outputs]} if dynamic_batch else None
    dummy = torch.zeros(1, 3, info.input_size, info.input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the legacy exporter is deprecated but is the one that works without onnxscript (see module doc)
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module, (dummy,), buf, dynamo=False, opset_version=int(opset), input_names=[INPUT_NAME],
                output_names=outputs, dynamic_axes=dyn, do_constant_folding=True,
            )
        except Exception as e:  # exporter errors are long; keep the first line
            raise ExportError(f"ONNX export failed for backbone {info.backbone!r} (opset {opset}): "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    model = onnx.load_from_string(buf.getvalue())
    del model.metadata_props[:]
    for key, value in metadata_for(info, with_cams, int(opset)).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model.SerializeToString()


def check_parity(
    net: torch.nn.Module, onnx_bytes: bytes, input_size: int, batch: int = 2, seed: int = 0
) -> dict[str, float]:
    """Compare onnxruntime (its CPU provider) with torch on ``batch`` random inputs (seeded by ``seed``).

    Two inputs by default, so an export that mixes the samples of a batch is caught; a model exported with a
    fixed batch size is checked at that size.

    Returns ``{"logits": max |Δ|, "cams": max |Δ| (when exported), "cams_scaled": max |Δ| / max(1, max |cam|)}``.
    CAMs are sums over all channels without the pooling average, so their float32 rounding error grows with
    their magnitude; they are judged relative to it (logits absolutely).

    Example:
        >>> check_parity(net, export_onnx_bytes(net, info), info.input_size)["logits"] < 1e-4  # doctest: +SKIP
        True
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    fixed = sess.get_inputs()[0].shape[0]
    n = fixed if isinstance(fixed, int) else batch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, input_size, input_size, generator=g)
    names = [o.name for o in sess.get_outputs()]
    with torch.inference_mode():
        logits, cams = net.to("cpu").eval().forward_with_cams(x)
    ref = {"logits": logits.numpy(), "cams": cams.numpy()}
    out: dict[str, float] = {}
    for name, got in zip(names, sess.run(names, {INPUT_NAME: x.numpy()}), strict=True):
        out[name] = float(np.abs(got - ref[name]).max())
        if name == "cams":
            out["cams_scaled"] = out[name] / max(1.0, float(np.abs(ref[name]).max()))
    return out


def parity_ok(diffs: dict[str, float], tolerance: float = PARITY_TOLERANCE) -> bool:
    """Logits within ``tolerance`` absolutely, CAMs within it relative to their scale (NaN fails)."""
    return diffs["logits"] <= tolerance and diffs.get("cams_scaled", 0.0) <= tolerance


def check_onnx_out(out: str | os.PathLike[str]) -> Path:
    """``out`` as a Path, or a one-line ValueError when it cannot be an ONNX output file.

    Example:
        >>> check_onnx_out("model.onnx").name
        'model.onnx'
    """
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"{out}: the output file should end in .onnx")
    if out.is_dir():
        raise ValueError(f"{out}: is a folder, expected an .onnx file path")
    return out


def export_onnx(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    with_cams: bool = False,
    tolerance: float = PARITY_TOLERANCE,
) -> dict[str, Any]:
    """Export a ``model.pt`` to ``out`` (atomically), after checking onnxruntime against torch.

    The file only appears when the parity check passes (logits max |Δ| ≤ ``tolerance``, CAMs relative to
    their scale, see :func:`check_parity`); otherwise
    :class:`ExportError` is raised and nothing is written.

    Example:
        >>> export_onnx("runs/demo/model.pt", "model.onnx", with_cams=True)["max_abs_diff"] < 1e-4  # doctest: +SKIP
        True
    """
    out = check_onnx_out(out)
    if not 7 <= int(opset) <= 23:
        raise ValueError(f"opset {opset} out of the supported range 7..23")
    if Path(checkpoint).suffix.lower() == ".onnx":
        raise ValueError(f"{checkpoint}: is already an ONNX model; export takes the model.pt from training")
    net, info = load_model(checkpoint, "cpu")
    data = export_onnx_bytes(net, info, opset=opset, dynamic_batch=dynamic_batch, with_cams=with_cams)
    diffs = check_parity(net, data, info.input_size)
    diff = diffs["logits"]
    if not parity_ok(diffs, tolerance):
        raise ExportError(f"{out}: onnxruntime disagrees with torch ({_fmt(diffs)} > {tolerance:g}); not written")
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    log.info("exported %s -> %s (%.1f MB, max |diff| %.2e)", checkpoint, out, len(data) / 1e6, diff)
    return {"path": str(out), "bytes": len(data), "max_abs_diff": diff, "diffs": diffs, "opset": int(opset),
            "dynamic_batch": dynamic_batch, "with_cams": with_cams, "backbone": info.backbone,
            "input_size": info.input_size, "class_names": list(info.class_names)}


def _fmt(diffs: dict[str, float]) -> str:
    return ", ".join(f"{k} max |diff| {v:.3g}" for k, v in diffs.items())
