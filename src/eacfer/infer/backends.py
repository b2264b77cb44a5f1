"""Face classifiers behind one interface: eager torch or onnxruntime, with optional CAMs.

A classifier takes aligned uint8 RGB crops (N×S×S×3, S = the model's input size) and returns class
probabilities (N×K; the softmax of the logits divided by the model file's fitted ``temperature``, 1 when
uncalibrated) and, when asked, class attention maps (N×K×h×w). Preprocessing (scale to [0, 1],
normalise with the model file's own mean/std) happens here so every caller gets it right.

Backend choice (``backend=None``): onnxruntime on CPU, torch on CUDA. A ``.pt`` file used on the CPU is
exported to ONNX once (with CAMs and a dynamic batch) and cached under ``$EACFER_CACHE_DIR`` (default
``~/.cache/eacfer/onnx``), keyed by the SHA-256 of the ``.pt`` content and the torch version, size-bounded
with least-recently-used eviction (:mod:`eacfer.infer.onnx_cache`); when the cache is not writable the
export stays in memory. ``precision="int8"`` derives a checked int8 model (:mod:`eacfer.infer.quantize`,
``docs/PRECISION.md``) and caches it beside the fp32 export. onnxruntime is several times faster than eager torch
on a CPU (numbers in ``benchmarks/RESULTS.md``, from ``benchmarks/cpu_inference.py``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from eacfer.infer.onnx_cache import cache_dir
from eacfer.infer.onnx_session import softmax
from eacfer.infer.quantize import PRECISIONS
from eacfer.modelinfo import CheckpointError, ModelInfo

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")
__all__ = ["BACKENDS", "PRECISIONS", "Classifier", "OnnxClassifier", "TorchClassifier", "cache_dir",
           "int8_for_model", "load_classifier", "onnx_for_checkpoint", "softmax"]


class Classifier(Protocol):
    """What the predictor needs from a backend."""

    info: ModelInfo
    backend: str
    device: str
    has_cams: bool
    precision: str

    def classify(self, crops: np.ndarray, cams: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 N×S×S×3 RGB crops → (probabilities N×K float32, CAMs N×K×h×w or None)."""
        ...


def _check_crops(crops: np.ndarray, size: int) -> np.ndarray:
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or crops.dtype != np.uint8:
        raise ValueError(f"expected N×{size}×{size}×3 uint8 crops, got shape {crops.shape} dtype {crops.dtype}")
    return crops


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
        import torch

        self.torch = torch
        self.info = info
        self.device = str(device)
        self.net = net.to(self.device).eval()
        self._mean = torch.tensor(info.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(info.std, device=self.device).view(1, 3, 1, 1) * 255.0

    def classify(self, crops: np.ndarray, cams: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        torch = self.torch
        crops = _check_crops(crops, self.info.input_size)
        with torch.inference_mode():
            arr = np.ascontiguousarray(crops)
            # torch warns on read-only arrays (e.g. np.asarray of a PIL image); a copy is a few KB per face
            x = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).to(self.device, non_blocking=True)
            # (x/255 - mean)/std == (x - 255·mean)/(255·std): one subtraction and one division
            x = (x.permute(0, 3, 1, 2).float() - self._mean) / self._std
            if cams:
                logits, maps = self.net.forward_with_cams(x)
                return softmax(logits.float().cpu().numpy(), self.info.temperature), maps.float().cpu().numpy()
            return softmax(self.net(x).float().cpu().numpy(), self.info.temperature), None


class OnnxClassifier:
    """onnxruntime backend (CPU by default; CUDA provider when installed and asked for).

    ``precision`` is ``"int8"`` for a quantised model (its metadata then holds the int8-vs-fp32 check in
    ``quantization``), else ``"fp32"``. Session settings: :mod:`eacfer.infer.onnx_session`.

    Example:
        >>> clf = OnnxClassifier.from_file("model.onnx")  # doctest: +SKIP
    """

    backend = "onnxruntime"

    def __init__(self, model: bytes | str | os.PathLike[str], source: str, threads: int | None = None,
                 device: str = "cpu"):
        from eacfer.infer.onnx_session import create_session, normaliser
        from eacfer.infer.quantize import read_quantization
        from eacfer.modelinfo import INPUT_NAME, read_onnx_metadata

        try:
            self.session = create_session(model, threads, device)
        except ValueError:
            raise
        except Exception as e:  # ORT raises its own exception types (InvalidProtobuf, Fail, …)
            from eacfer.modelinfo import first_sentence

            raise CheckpointError(f"{source}: not a valid ONNX model (truncated or corrupted?): "
                                  f"{first_sentence(str(e)) or type(e).__name__}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info, self.export_info = read_onnx_metadata(meta, source)
        self.quantization = read_quantization(meta)
        self.precision = "int8" if self.quantization is not None else "fp32"
        self.device = device
        inputs = self.session.get_inputs()
        outputs = {o.name: o for o in self.session.get_outputs()}
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or "logits" not in outputs:
            raise CheckpointError(f"{source}: unexpected ONNX signature (want input 'input', output 'logits')")
        shape = inputs[0].shape
        s = self.info.input_size
        if len(shape) != 4 or list(shape[1:]) != [3, s, s]:
            raise CheckpointError(f"{source}: ONNX input shape {shape} does not match the metadata (N×3×{s}×{s})")
        k = outputs["logits"].shape[-1]
        if isinstance(k, int) and k != self.info.num_classes:
            raise CheckpointError(f"{source}: ONNX outputs {k} classes, metadata lists {self.info.num_classes}")
        self.has_cams = "cams" in outputs
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        # x·scale − shift == (x/255 − mean)/std, folded into one multiply-add per pixel
        self._scale, self._shift = normaliser(self.info.mean, self.info.std)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], threads: int | None = None, device: str = "cpu") -> OnnxClassifier:
        """Open an exported ``.onnx``; truncated/foreign files raise :class:`CheckpointError`."""
        path = Path(path)
        _check_file(path)
        # Bytes, not a path: onnxruntime then refuses external-data references, so a model file
        # cannot make us read arbitrary files next to it.
        try:
            return cls(path.read_bytes(), str(path), threads=threads, device=device)
        except CheckpointError:
            from eacfer.modelinfo import image_kind

            kind = image_kind(path)  # a photo renamed .onnx: say so rather than "corrupted"
            if kind is None:
                raise
            raise CheckpointError(f"{path}: not a model file: {kind}") from None

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        from eacfer.infer.onnx_session import preprocess

        return preprocess(crops, self._scale, self._shift)

    def classify(self, crops: np.ndarray, cams: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        crops = _check_crops(crops, self.info.input_size)
        if cams and not self.has_cams:
            raise ValueError("this ONNX model was exported without CAMs (use `eacfer export --with-cams`)")
        names = ["logits", "cams"] if cams else ["logits"]
        x = self.preprocess(crops)
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            # a fixed-batch export (batch 1): run face by face
            parts = [self.session.run(names, {"input": x[i:i + 1]}) for i in range(x.shape[0])]
            outs = [np.concatenate([p[j] for p in parts]) for j in range(len(names))]
        else:
            outs = self.session.run(names, {"input": x})
        return softmax(outs[0], self.info.temperature), (outs[1] if cams else None)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.is_dir():
        from eacfer.modelinfo import folder_hint

        raise CheckpointError(f"{path}: is a folder, expected a model file (.pt or .onnx){folder_hint(path)}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (truncated or still being written?)")


def _content_key(path: Path, variant: str) -> str:
    import torch

    from eacfer.infer.onnx_cache import file_sha256

    return f"{file_sha256(path)[:24]}-t{torch.__version__.split('+')[0]}-{variant}"


def onnx_for_checkpoint(path: str | os.PathLike[str], use_cache: bool = True) -> bytes | Path:
    """Return an ONNX export (with CAMs, dynamic batch) of a ``.pt`` model: a cached file or bytes.

    Example:
        >>> clf = OnnxClassifier(onnx_for_checkpoint("model.pt"), "model.pt")  # doctest: +SKIP
    """
    from eacfer.checkpoint import load_model
    from eacfer.export import export_onnx_bytes
    from eacfer.infer.onnx_cache import lookup, store

    path = Path(path)
    key, root = _content_key(path, "cams"), cache_dir()
    if use_cache and (cached := lookup(root, key)) is not None:
        log.debug("using cached ONNX export %s", cached)
        return cached
    net, info = load_model(path, "cpu")
    data = export_onnx_bytes(net, info, dynamic_batch=True, with_cams=True)
    if use_cache:
        try:
            cached = store(root, key, path, data)
            log.info("exported %s to ONNX for CPU inference (cached in %s)", path, cached)
        except OSError as e:  # read-only home, full disk: stay in memory
            log.info("could not cache the ONNX export (%s); using it from memory", e)
    return data


def int8_for_model(path: str | os.PathLike[str], use_cache: bool = True, min_agreement: float | None = None,
                   threads: int | None = None) -> bytes | Path:
    """An int8 model derived from a ``.pt`` or fp32 ``.onnx`` (calibrated, checked against fp32), cached.

    Raises :class:`~eacfer.infer.quantize.QuantizationError` (one line) when the check fails; a failed
    check is remembered in the cache, so it is not rerun on every start.

    Example:
        >>> clf = OnnxClassifier(int8_for_model("model.pt"), "model.pt")  # doctest: +SKIP
    """
    import json

    from eacfer.infer.calibration import default_crop_sets
    from eacfer.infer.onnx_cache import lookup, read_refusal, store
    from eacfer.infer.quantize import MIN_AGREEMENT, QuantizationError, quantize_checked
    from eacfer.modelinfo import read_onnx_metadata

    path = Path(path)
    threshold = MIN_AGREEMENT if min_agreement is None else float(min_agreement)
    key, root = _content_key(path, "cams-int8" if path.suffix.lower() != ".onnx" else "onnx-int8"), cache_dir()
    if use_cache:
        if (cached := lookup(root, key)) is not None:
            log.debug("using cached int8 model %s", cached)
            return cached
        refusal = read_refusal(root, key)
        if refusal is not None and refusal.get("min_agreement") == threshold:
            raise QuantizationError(str(refusal.get("reason", f"{path}: int8 refused earlier")))
    if path.suffix.lower() == ".onnx":
        fp32: bytes = path.read_bytes()
    else:
        src = onnx_for_checkpoint(path, use_cache=use_cache)
        fp32 = src.read_bytes() if isinstance(src, Path) else src
    import onnx

    meta = {p.key: p.value for p in onnx.load_from_string(fp32).metadata_props}
    info, _ = read_onnx_metadata(meta, str(path))
    log.info("quantising %s to int8 (calibration and check on face crops; a minute or two on a CPU)", path)
    sets = default_crop_sets(info.input_size, info.face_size, margin=info.face_margin,
                                   shift=info.face_shift)
    try:
        data, _ = quantize_checked(fp32, str(path), sets.calibration, sets.checks, sets.description,
                                   min_agreement=threshold, threads=threads)
    except QuantizationError as e:
        if use_cache:
            try:
                rec = {"reason": str(e), "min_agreement": threshold}
                store(root, key, path, json.dumps(rec).encode(), suffix=".refused.json")
            except OSError:
                pass
        raise
    if use_cache:
        try:
            cached = store(root, key, path, data)
            log.info("int8 model cached in %s", cached)
        except OSError as e:
            log.info("could not cache the int8 model (%s); using it from memory", e)
    return data


def load_classifier(
    path: str | os.PathLike[str],
    device: str = "auto",
    backend: str | None = None,
    threads: int | None = None,
    use_cache: bool = True,
    precision: str = "fp32",
) -> Classifier:
    """Open a ``.pt`` or ``.onnx`` model as a classifier on the best backend for ``device``.

    Args:
        path: ``model.pt`` (from training) or an exported ``.onnx``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        backend: ``None`` (onnxruntime on CPU, torch on CUDA), ``"torch"`` or ``"onnxruntime"``.
        threads: CPU threads for onnxruntime (default: all cores this process may use).
        precision: ``"fp32"`` (default) or ``"int8"``: a static int8 model derived from the fp32 one, used
            only when it agrees with fp32 on ≥ 99 % of the check crops (else ``QuantizationError``, a
            ``ValueError``); built once per model content and cached. An ``.onnx`` that is already int8
            runs as int8 whatever ``precision`` says.

    Example:
        >>> clf = load_classifier("runs/demo/model.pt")  # doctest: +SKIP
        >>> clf.backend                                   # doctest: +SKIP
        'onnxruntime'
    """
    from eacfer.utils.device import resolve_device

    path = Path(path)
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    dev = str(resolve_device(device))
    suffix = path.suffix.lower()
    _check_file(path)  # first: a run folder has no suffix, and "is a folder; did you mean …" says why
    if suffix not in (".pt", ".pth", ".onnx"):
        raise CheckpointError(f"{path}: unknown model file type {suffix or '(none)'!r}; expected .pt or .onnx")
    if precision == "int8":
        if backend == "torch":
            raise ValueError(f"{path}: --precision int8 runs on onnxruntime only (drop --backend torch)")
        if dev.startswith("cuda") and device != "auto":
            raise ValueError(f"{path}: --precision int8 is a CPU path (onnxruntime); use --device cpu")
        dev = "cpu"
    if suffix == ".onnx":
        if backend == "torch":
            raise ValueError(f"{path}: an .onnx model runs on onnxruntime only (drop --backend torch)")
        if device == "auto" and dev.startswith("cuda"):
            import onnxruntime as ort

            # "auto" must not fail on a GPU machine whose onnxruntime is the CPU-only build
            dev = dev if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
        clf = OnnxClassifier.from_file(path, threads=threads, device=dev)
        if precision == "int8" and clf.precision != "int8":
            src = int8_for_model(path, use_cache=use_cache, threads=threads)
            return OnnxClassifier(src.read_bytes() if isinstance(src, Path) else src, str(path), threads, dev)
        return clf
    if backend is None:
        backend = "torch" if dev.startswith("cuda") else "onnxruntime"
    if backend == "torch":
        from eacfer.checkpoint import load_model

        net, info = load_model(path, "cpu")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        return TorchClassifier(net, info, dev)
    # validate the .pt (safe loading, metadata) before exporting or trusting a cache entry
    from eacfer.checkpoint import load_checkpoint
    from eacfer.modelinfo import info_from_payload

    info_from_payload(load_checkpoint(path), str(path))
    if precision == "int8":
        src = int8_for_model(path, use_cache=use_cache, threads=threads)
    else:
        src = onnx_for_checkpoint(path, use_cache=use_cache)
    if isinstance(src, Path):
        return OnnxClassifier(src.read_bytes(), str(path), threads=threads, device=dev)
    return OnnxClassifier(src, str(path), threads=threads, device=dev)
