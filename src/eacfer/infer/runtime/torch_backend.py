"""Everything inference does that needs torch: the eager torch classifier, exporting a ``.pt`` to ONNX.

Why a module of its own: an exported ``.onnx`` model — and a ``.pt`` whose ONNX export is already cached —
runs without torch (issue #25: a runtime-only install, a third of the memory). The torch-free modules reach
this one only through :func:`eacfer.infer.runtime.backends.torch_backend`, which imports it when a ``.pt`` must be
read (an ONNX-cache miss, ``--backend torch``, a CUDA device, ``eacfer export --precision int8``) and turns
a missing torch into a one-line error. The import-linter contract "The inference runtime never imports
torch" (pyproject.toml) lists that one import as the only way from the runtime to torch.

Example:
    >>> from eacfer.infer.runtime.backends import torch_backend   # doctest: +SKIP
    >>> clf = torch_backend("model.pt").load_torch_classifier("model.pt", "cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

# At the top, unlike elsewhere in eacfer: this module *is* the torch side, imported only when torch is needed,
# and infer.backends.torch_backend() turns a missing torch into one line at this import.
import torch

from eacfer.infer.align import check_crops
from eacfer.infer.onnx_cache import cache_dir, content_key
from eacfer.infer.runtime.onnx_session import normaliser, softmax
from eacfer.infer.runtime.quantize import MIN_AGREEMENT, quantize_checked
from eacfer.modelinfo import ModelInfo

log = logging.getLogger(__name__)


class TorchClassifier:
    """Eager PyTorch backend (CPU or CUDA).

    Example:
        >>> clf = TorchClassifier(*load_model("model.pt"), device="cpu")  # doctest: +SKIP
        >>> probs, cams = clf.classify(crops, cams=True)                  # doctest: +SKIP
    """

    backend = "torch"
    has_cams = True
    precision = "fp32"

    def __init__(self, net: Any, info: ModelInfo, device: str = "cpu"):
        self.torch = torch
        self.info = info
        self.device = str(device)
        self.net = net.to(self.device).eval()
        # the normalisation constants of every backend (onnx_session.normaliser), applied on the device
        scale, shift = normaliser(info.mean, info.std)
        self._scale = torch.from_numpy(scale).to(self.device)
        self._shift = torch.from_numpy(shift).to(self.device)

    def classify(self, crops: np.ndarray, cams: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        torch = self.torch
        crops = check_crops(crops, self.info.input_size)
        with torch.inference_mode():
            arr = np.ascontiguousarray(crops)
            # torch warns on read-only arrays (e.g. np.asarray of a PIL image); a copy is a few KB per face
            x = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).to(self.device, non_blocking=True)
            # x·scale − shift == (x/255 − mean)/std, as onnx_session.preprocess does it
            x = x.permute(0, 3, 1, 2).float() * self._scale - self._shift
            if cams:
                logits, maps = self.net.forward_with_cams(x)
                return softmax(logits.float().cpu().numpy(), self.info.temperature), maps.float().cpu().numpy()
            return softmax(self.net(x).float().cpu().numpy(), self.info.temperature), None


def resolve_device(device: str) -> str:
    """``auto``/``cpu``/``cuda[:n]`` as torch sees this machine (``auto``: CUDA when torch finds a GPU).

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    from eacfer.utils.device import resolve_device as _resolve

    return str(_resolve(device))


def load_torch_classifier(path: str | os.PathLike[str], device: str, threads: int | None = None) -> TorchClassifier:
    """A ``.pt`` model on the eager torch backend (``--backend torch``, the default on CUDA).

    Example:
        >>> clf = load_torch_classifier("runs/demo/model.pt", "cpu")  # doctest: +SKIP
    """
    from eacfer.checkpoint import load_model

    net, info = load_model(path, "cpu")
    if threads:
        torch.set_num_threads(int(threads))
    return TorchClassifier(net, info, device)


def export_to_cache(path: str | os.PathLike[str], use_cache: bool = True) -> bytes | Path:
    """Export a ``.pt`` model to ONNX (with CAMs, dynamic batch) and cache it; the cache file, or the bytes
    when the cache cannot be written (the ONNX-cache miss of :func:`eacfer.infer.runtime.backends.onnx_for_checkpoint`).

    Example:
        >>> export_to_cache("model.pt")  # doctest: +SKIP
        PosixPath('/home/me/.cache/eacfer/onnx/....onnx')
    """
    from eacfer.checkpoint import load_model
    from eacfer.export import export_onnx_bytes
    from eacfer.infer.onnx_cache import store

    path = Path(path)
    key, root = content_key(path, "cams"), cache_dir()
    net, info = load_model(path, "cpu")
    data = export_onnx_bytes(net, info, dynamic_batch=True, with_cams=True)
    if use_cache:
        try:
            cached = store(root, key, path, data)
            log.info("exported %s to ONNX for CPU inference (cached in %s)", path, cached)
        except OSError as e:  # read-only home, full disk: stay in memory
            log.info("could not cache the ONNX export (%s); using it from memory", e)
    return data


def export_int8(checkpoint: str | Path, out: str | Path, opset: int | None = None, dynamic_batch: bool = False,
                with_cams: bool = False, min_agreement: float = MIN_AGREEMENT,
                crop_sets: Any = None) -> dict[str, Any]:
    """``eacfer export --precision int8``: export fp32 (parity-checked against torch), quantise, check, write.

    Nothing is written when the fp32 parity check or the int8 agreement check fails. ``crop_sets`` (a
    :class:`~eacfer.infer.runtime.calibration.CropSets`) replaces the default calibration/check crops.

    Example:
        >>> r = export_int8("runs/demo/run/model.pt", "model-int8.onnx", with_cams=True)  # doctest: +SKIP
        >>> r["quantization"]["checks"]["portrait"]["agreement"] >= 0.99                  # doctest: +SKIP
        True
    """
    from eacfer.checkpoint import load_model
    from eacfer.export import (
        DEFAULT_OPSET,
        ExportError,
        check_onnx_out,
        check_parity,
        export_onnx_bytes,
        parity_ok,
    )
    from eacfer.infer.runtime.calibration import default_crop_sets
    from eacfer.utils.atomic import atomic_path

    out = check_onnx_out(out)
    if Path(checkpoint).suffix.lower() == ".onnx":
        raise ValueError(f"{checkpoint}: is already an ONNX model; export takes the model.pt from training")
    net, info = load_model(checkpoint, "cpu")
    opset = int(opset or DEFAULT_OPSET)
    fp32 = export_onnx_bytes(net, info, opset=opset, dynamic_batch=dynamic_batch, with_cams=with_cams)
    diffs = check_parity(net, fp32, info.input_size)
    if not parity_ok(diffs):
        raise ExportError(f"{out}: onnxruntime disagrees with torch (logits max |diff| {diffs['logits']:.3g}); "
                          "not written")
    sets = crop_sets or default_crop_sets(info.input_size, info.face_size, margin=info.face_margin,
                                   shift=info.face_shift)
    data, record = quantize_checked(fp32, str(checkpoint), sets.calibration, sets.checks, sets.description,
                                    min_agreement=min_agreement)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    log.info("exported %s -> %s (int8, %.1f MB)", checkpoint, out, len(data) / 1e6)
    return {"path": str(out), "bytes": len(data), "fp32_bytes": len(fp32), "diffs": diffs, "opset": opset,
            "dynamic_batch": dynamic_batch, "with_cams": with_cams, "backbone": info.backbone,
            "input_size": info.input_size, "class_names": list(info.class_names), "quantization": record}
