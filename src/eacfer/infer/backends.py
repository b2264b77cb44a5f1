"""Face classifiers behind one interface: eager torch or onnxruntime, with optional CAMs.

A classifier takes aligned uint8 RGB crops (N×S×S×3, S = the model's input size) and returns class
probabilities (N×K) and, when asked, class attention maps (N×K×h×w). Preprocessing (scale to [0, 1],
normalise with the model file's own mean/std) happens here so every caller gets it right.

Backend choice (``backend=None``): onnxruntime on CPU, torch on CUDA. A ``.pt`` file used on the CPU is
exported to ONNX once (with CAMs and a dynamic batch) and cached under ``$EACFER_CACHE_DIR`` (default
``~/.cache/eacfer/onnx``), keyed by the SHA-256 of the ``.pt`` content and the torch version; when the
cache is not writable the export stays in memory. onnxruntime is several times faster than eager torch
on a CPU (numbers in ``benchmarks/RESULTS.md``, from ``benchmarks/cpu_inference.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from eacfer.checkpoint import CheckpointError, ModelInfo

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")


class Classifier(Protocol):
    """What the predictor needs from a backend."""

    info: ModelInfo
    backend: str
    device: str
    has_cams: bool

    def classify(self, crops: np.ndarray, cams: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 N×S×S×3 RGB crops → (probabilities N×K float32, CAMs N×K×h×w or None)."""
        ...


def _check_crops(crops: np.ndarray, size: int) -> np.ndarray:
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or crops.dtype != np.uint8:
        raise ValueError(f"expected N×{size}×{size}×3 uint8 crops, got shape {crops.shape} dtype {crops.dtype}")
    return crops


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class TorchClassifier:
    """Eager PyTorch backend (CPU or CUDA).

    Example:
        >>> clf = TorchClassifier(*load_model("model.pt"), device="cpu")  # doctest: +SKIP
        >>> probs, cams = clf.classify(crops, cams=True)                  # doctest: +SKIP
    """

    backend = "torch"
    has_cams = True

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
                return torch.softmax(logits.float(), 1).cpu().numpy(), maps.float().cpu().numpy()
            return torch.softmax(self.net(x).float(), 1).cpu().numpy(), None


class OnnxClassifier:
    """onnxruntime backend (CPU by default; CUDA provider when installed and asked for).

    Example:
        >>> clf = OnnxClassifier.from_file("model.onnx")  # doctest: +SKIP
    """

    backend = "onnxruntime"

    def __init__(self, model: bytes | str | os.PathLike[str], source: str, threads: int | None = None,
                 device: str = "cpu"):
        import onnxruntime as ort

        from eacfer.export import INPUT_NAME, read_onnx_metadata

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = int(threads or _default_threads())
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # No busy-waiting worker threads: with spinning on, ORT's idle threads keep both cores busy after
        # each run and starve the face detector and the video codec (measured on 2 cores with a 64 px
        # test model: 24 → 61 FPS end-to-end for `eacfer video`).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError("onnxruntime has no CUDA provider here (install onnxruntime-gpu or use --backend torch)")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(model, sess_options=opts, providers=providers)
        except Exception as e:  # ORT raises its own exception types (InvalidProtobuf, Fail, …)
            raise CheckpointError(f"{source}: not a valid ONNX model (truncated or corrupted?): "
                                  f"{str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
        self.info, self.export_info = read_onnx_metadata(self.session.get_modelmeta().custom_metadata_map, source)
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
        mean = np.asarray(self.info.mean, np.float32)
        std = np.asarray(self.info.std, np.float32)
        # x·scale − shift == (x/255 − mean)/std, folded into one multiply-add per pixel
        self._scale = (1.0 / (255.0 * std)).reshape(1, 3, 1, 1)
        self._shift = (mean / std).reshape(1, 3, 1, 1)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], threads: int | None = None, device: str = "cpu") -> OnnxClassifier:
        """Open an exported ``.onnx``; truncated/foreign files raise :class:`CheckpointError`."""
        path = Path(path)
        _check_file(path)
        # Bytes, not a path: onnxruntime then refuses external-data references, so a model file
        # cannot make us read arbitrary files next to it.
        return cls(path.read_bytes(), str(path), threads=threads, device=device)

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        x = crops.transpose(0, 3, 1, 2).astype(np.float32)
        x *= self._scale
        x -= self._shift
        return x

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
        return softmax(outs[0]), (outs[1] if cams else None)


def _default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, expected a model file (.pt or .onnx)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (truncated or still being written?)")


def cache_dir() -> Path:
    """Where on-the-fly ONNX exports of ``.pt`` files are cached (``$EACFER_CACHE_DIR`` or ~/.cache/eacfer)."""
    base = os.environ.get("EACFER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "eacfer")
    return Path(base) / "onnx"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def onnx_for_checkpoint(path: str | os.PathLike[str], use_cache: bool = True) -> bytes | Path:
    """Return an ONNX export (with CAMs, dynamic batch) of a ``.pt`` model: a cached file or bytes.

    Example:
        >>> clf = OnnxClassifier(onnx_for_checkpoint("model.pt"), "model.pt")  # doctest: +SKIP
    """
    import torch

    from eacfer.checkpoint import load_model
    from eacfer.export import export_onnx_bytes
    from eacfer.utils.atomic import atomic_path

    path = Path(path)
    key = f"{_file_sha256(path)[:24]}-t{torch.__version__.split('+')[0]}-cams"
    cached = cache_dir() / f"{key}.onnx"
    if use_cache and cached.is_file() and cached.stat().st_size > 0:
        log.debug("using cached ONNX export %s", cached)
        return cached
    net, info = load_model(path, "cpu")
    data = export_onnx_bytes(net, info, dynamic_batch=True, with_cams=True)
    if use_cache:
        try:
            with atomic_path(cached) as tmp:
                tmp.write_bytes(data)
            log.info("exported %s to ONNX for CPU inference (cached in %s)", path, cached)
        except OSError as e:  # read-only home, full disk: stay in memory
            log.info("could not cache the ONNX export (%s); using it from memory", e)
    return data


def load_classifier(
    path: str | os.PathLike[str],
    device: str = "auto",
    backend: str | None = None,
    threads: int | None = None,
    use_cache: bool = True,
) -> Classifier:
    """Open a ``.pt`` or ``.onnx`` model as a classifier on the best backend for ``device``.

    Args:
        path: ``model.pt`` (from training) or an exported ``.onnx``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        backend: ``None`` (onnxruntime on CPU, torch on CUDA), ``"torch"`` or ``"onnxruntime"``.
        threads: CPU threads for onnxruntime (default: all cores this process may use).

    Example:
        >>> clf = load_classifier("runs/demo/model.pt")  # doctest: +SKIP
        >>> clf.backend                                   # doctest: +SKIP
        'onnxruntime'
    """
    from eacfer.utils.device import resolve_device

    path = Path(path)
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    dev = str(resolve_device(device))
    suffix = path.suffix.lower()
    if suffix not in (".pt", ".pth", ".onnx"):
        raise CheckpointError(f"{path}: unknown model file type {suffix or '(none)'!r}; expected .pt or .onnx")
    _check_file(path)
    if suffix == ".onnx":
        if backend == "torch":
            raise ValueError(f"{path}: an .onnx model runs on onnxruntime only (drop --backend torch)")
        if device == "auto" and dev.startswith("cuda"):
            import onnxruntime as ort

            # "auto" must not fail on a GPU machine whose onnxruntime is the CPU-only build
            dev = dev if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
        return OnnxClassifier.from_file(path, threads=threads, device=dev)
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
    from eacfer.checkpoint import info_from_payload, load_checkpoint

    info_from_payload(load_checkpoint(path), str(path))
    src = onnx_for_checkpoint(path, use_cache=use_cache)
    if isinstance(src, Path):
        return OnnxClassifier(src.read_bytes(), str(path), threads=threads, device=dev)
    return OnnxClassifier(src, str(path), threads=threads, device=dev)
