"""Face classifiers behind one interface: eager torch or onnxruntime, with optional CAMs.

A classifier takes aligned uint8 RGB crops (N×S×S×3, S = the model's input size) and returns class
probabilities (N×K; the softmax of the logits divided by the model file's fitted ``temperature``, 1 when
uncalibrated) and, when asked, class attention maps (N×K×h×w). Preprocessing (scale to [0, 1],
normalise with the model file's own mean/std) happens here so every caller gets it right.

Backend choice (``backend=None``): onnxruntime on CPU, torch on CUDA. A ``.pt`` file used on the CPU is
exported to ONNX once (with CAMs and a dynamic batch) and cached under ``$EACFER_CACHE_DIR`` (default
``~/.cache/eacfer/onnx``), keyed by the SHA-256 of the ``.pt`` content and the torch version, size-bounded
with least-recently-used eviction (:mod:`eacfer.infer.onnx_cache`); when the cache is not writable the
export stays in memory. ``precision="int8"`` derives a checked int8 model (:mod:`eacfer.infer.runtime.quantize`,
``docs/PRECISION.md``) and caches it beside the fp32 export. onnxruntime is several times faster than eager torch
on a CPU (numbers in ``benchmarks/RESULTS.md``, from ``benchmarks/cpu_inference.py``).

This module imports no torch: an ``.onnx`` model, and a ``.pt`` whose export is cached, run without it (and
``--device auto`` is settled without asking torch where no NVIDIA device exists). The eager torch classifier and
the ``.pt`` → ONNX export live in :mod:`eacfer.infer.runtime.torch_backend`, reached only through :func:`torch_backend`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from eacfer.infer.align import check_crops
from eacfer.infer.onnx_cache import cache_dir, content_key
from eacfer.infer.runtime.onnx_session import softmax
from eacfer.infer.runtime.quantize import PRECISIONS
from eacfer.modelinfo import CheckpointError, ModelInfo

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")
__all__ = ["BACKENDS", "PRECISIONS", "Classifier", "OnnxClassifier", "cache_dir", "int8_for_model", "load_classifier",
           "onnx_for_checkpoint", "softmax", "torch_backend"]


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


class OnnxClassifier:
    """onnxruntime backend (CPU by default; CUDA provider when installed and asked for).

    ``precision`` is ``"int8"`` for a quantised model (its metadata then holds the int8-vs-fp32 check in
    ``quantization``), else ``"fp32"``. Session settings: :mod:`eacfer.infer.runtime.onnx_session`.

    Example:
        >>> clf = OnnxClassifier.from_file("model.onnx")  # doctest: +SKIP
    """

    backend = "onnxruntime"

    def __init__(self, model: bytes | str | os.PathLike[str], source: str, threads: int | None = None,
                 device: str = "cpu"):
        from eacfer.infer.runtime.onnx_session import create_session, normaliser
        from eacfer.infer.runtime.quantize import read_quantization
        from eacfer.modelinfo import INPUT_NAME, read_onnx_metadata

        try:
            self.session = create_session(model if isinstance(model, bytes) else os.fspath(model), threads, device)
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
        from eacfer.infer.runtime.onnx_session import preprocess

        return preprocess(crops, self._scale, self._shift)

    def classify(self, crops: np.ndarray, cams: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        crops = check_crops(crops, self.info.input_size)
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


def torch_backend(path: str | os.PathLike[str]) -> Any:
    """The torch side of inference (:mod:`eacfer.infer.runtime.torch_backend`), imported only now that ``path``
    (a ``.pt``) needs it; without torch installed, a one-line :class:`CheckpointError` says what to do.

    Why this seam: with an ``.onnx`` model, or a ``.pt`` whose export is cached, inference never imports
    torch (≈ 600 MB and seconds of start-up); this function is the one road from the runtime to torch
    (the ``ignore_imports`` entry of the import-linter contract "The inference runtime never imports torch").

    Example:
        >>> torch_backend("model.pt").load_torch_classifier("model.pt", "cpu")  # doctest: +SKIP
    """
    try:
        from eacfer.infer.runtime import torch_backend as tb
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in ("torch", "torchvision"):
            raise
        raise CheckpointError(f"{path}: a .pt model needs torch, which is not installed here: "
                              "pip install 'eacfer[train]', or run an exported .onnx (eacfer export)") from None
    return tb


def onnx_for_checkpoint(path: str | os.PathLike[str], use_cache: bool = True) -> bytes | Path:
    """Return an ONNX export (with CAMs, dynamic batch) of a ``.pt`` model: a cached file or bytes.

    A cache hit (same ``.pt`` content) needs no torch; a miss loads the ``.pt`` and exports it with torch
    (:func:`eacfer.infer.runtime.torch_backend.export_to_cache`).

    Example:
        >>> clf = OnnxClassifier(onnx_for_checkpoint("model.pt"), "model.pt")  # doctest: +SKIP
    """
    from eacfer.infer.onnx_cache import lookup

    path = Path(path)
    # A hit needs no check of the .pt: the entry is keyed by the file's SHA-256, and was written only after
    # this very content had loaded safely and passed the metadata checks.
    if use_cache and (cached := lookup(cache_dir(), content_key(path, "cams"))) is not None:
        log.debug("using cached ONNX export %s", cached)
        return cached
    return torch_backend(path).export_to_cache(path, use_cache)


def int8_for_model(path: str | os.PathLike[str], use_cache: bool = True, min_agreement: float | None = None,
                   threads: int | None = None) -> bytes | Path:
    """An int8 model derived from a ``.pt`` or fp32 ``.onnx`` (calibrated, checked against fp32), cached.

    Raises :class:`~eacfer.infer.runtime.quantize.QuantizationError` (one line) when the check fails; a failed
    check is remembered in the cache, so it is not rerun on every start.

    Example:
        >>> clf = OnnxClassifier(int8_for_model("model.pt"), "model.pt")  # doctest: +SKIP
    """
    import json

    from eacfer.infer.onnx_cache import lookup, read_refusal, store
    from eacfer.infer.runtime.calibration import default_crop_sets
    from eacfer.infer.runtime.quantize import MIN_AGREEMENT, QuantizationError, quantize_checked
    from eacfer.modelinfo import read_onnx_metadata

    path = Path(path)
    threshold = MIN_AGREEMENT if min_agreement is None else float(min_agreement)
    key, root = content_key(path, "cams-int8" if path.suffix.lower() != ".onnx" else "onnx-int8"), cache_dir()
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
    path = Path(path)
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    device = str(device)
    if not _DEVICE.fullmatch(device):
        raise ValueError(f"--device must be auto, cpu or cuda (e.g. cuda:1), got {device!r}")
    suffix = path.suffix.lower()
    _check_file(path)  # first: a run folder has no suffix, and "is a folder; did you mean …" says why
    if suffix not in (".pt", ".pth", ".onnx"):
        raise CheckpointError(f"{path}: unknown model file type {suffix or '(none)'!r}; expected .pt or .onnx")
    if precision == "int8":
        if backend == "torch":
            raise ValueError(f"{path}: --precision int8 runs on onnxruntime only (drop --backend torch)")
        if device.startswith("cuda"):
            raise ValueError(f"{path}: --precision int8 is a CPU path (onnxruntime); use --device cpu")
        device = "cpu"
    if suffix == ".onnx":
        if backend == "torch":
            raise ValueError(f"{path}: an .onnx model runs on onnxruntime only (drop --backend torch)")
        dev = _onnx_device(device)
        clf = OnnxClassifier.from_file(path, threads=threads, device=dev)
        if precision == "int8" and clf.precision != "int8":
            src = int8_for_model(path, use_cache=use_cache, threads=threads)
            return OnnxClassifier(src.read_bytes() if isinstance(src, Path) else src, str(path), threads, dev)
        return clf
    # a .pt: only torch knows whether CUDA works for it; asked only where a GPU may exist (see _may_have_cuda)
    if device.startswith("cpu") or (device == "auto" and backend != "torch" and not _may_have_cuda()):
        dev = "cpu" if device == "auto" else device
    else:
        try:
            dev = torch_backend(path).resolve_device(device)
        except CheckpointError:  # torch is not installed
            if device != "auto" or backend == "torch":
                raise
            dev = "cpu"  # `auto` without torch: the ONNX export on the CPU (a cache miss says torch is needed)
    if backend is None:
        backend = "torch" if dev.startswith("cuda") else "onnxruntime"
    if backend == "torch":
        return torch_backend(path).load_torch_classifier(path, dev, threads)
    # the .pt is validated (safe loading, metadata) before it is exported: onnx_for_checkpoint's miss path
    if precision == "int8":
        src = int8_for_model(path, use_cache=use_cache, threads=threads)
    else:
        src = onnx_for_checkpoint(path, use_cache=use_cache)
    if isinstance(src, Path):
        return OnnxClassifier(src.read_bytes(), str(path), threads=threads, device=dev)
    return OnnxClassifier(src, str(path), threads=threads, device=dev)


#: the devices ``--device`` accepts
_DEVICE = re.compile(r"auto|cpu(:\d+)?|cuda(:\d+)?")


def _may_have_cuda() -> bool:
    """Whether an NVIDIA GPU may be usable here, known without importing torch: on Linux the driver's device
    files (``/dev/nvidia0`` …); elsewhere there is no such cheap probe, so torch is asked (as before 0.2).

    Example:
        >>> isinstance(_may_have_cuda(), bool)
        True
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):  # GPUs hidden from this process
        return False
    if sys.platform.startswith("linux"):
        return any(Path("/dev").glob("nvidia[0-9]*"))
    return sys.platform != "darwin"


def _onnx_device(device: str) -> str:
    """The onnxruntime device for ``--device`` (no torch: an ``.onnx`` model runs without it).

    ``auto``: CUDA when onnxruntime has its CUDA provider and a GPU may be present, else the CPU (``auto`` must
    not fail on a GPU machine whose onnxruntime is the CPU-only build); ``cuda[:n]`` needs that provider.
    """
    if device.startswith("cpu"):
        return device
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers() and _may_have_cuda()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise ValueError("--device cuda was requested but no CUDA GPU is available (use --device cpu or auto)")
    return device
