"""Cost of a model: parameters, FLOPs, file sizes, per-face latency, video FPS, and accuracy when known.

* FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` (no extra dependency). It counts
  2 FLOPs per multiply-accumulate of convolutions and matrix products (the usual "GFLOPs = 2·GMAC"
  convention; normalisation, activations and pooling are not counted), for one face at S×S.
  Caffe-style ResNet-50 + 7-class head: 23.52 M parameters, 7.71 GFLOP at 224²; MobileNetV2: 2.23 M, 0.60.
* Latency is the median wall time of repeated forward passes after warm-up, per face, at batch 1 and at
  a throughput batch: torch eager (float32) and onnxruntime on CPU, plus torch on CUDA when the device is
  CUDA, autocast as the GPU generation's training policy says (bf16 ≥ 8.0, fp16 on 7.x, fp32 below). Threads: torch's current setting, and onnxruntime gets the same number.
* Video FPS is end to end — decode a synthetic 640×480 clip, detect (the default MediaPipe detector),
  align, classify — through :class:`eacfer.infer.predictor.Predictor`, on the bundled astronaut photo.

Example:
    >>> spec = ModelSpec.from_backbone("mobilenet_v2")
    >>> row = measure_model(spec, image_size=64, iters=2, warmup=1, video_frames=0, onnx=False)
    >>> round(row["params_m"], 2)
    2.23
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from eacfer.bench.efficiency_tables import COLUMNS, write_efficiency_outputs

log = logging.getLogger(__name__)

@dataclass
class ModelSpec:
    """A model to measure: a bare backbone (random weights: cost only) or a trained ``model.pt``."""

    name: str
    backbone: str
    checkpoint: str | None = None

    @classmethod
    def from_backbone(cls, backbone: str) -> ModelSpec:
        return cls(name=backbone, backbone=backbone)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str]) -> ModelSpec:
        from eacfer.checkpoint import load_checkpoint
        from eacfer.modelinfo import info_from_payload

        info = info_from_payload(load_checkpoint(path), str(path))
        p = Path(path)
        return cls(name=f"{info.backbone} ({p.parent.name}/{p.name})", backbone=info.backbone, checkpoint=str(p))

    def load(self, image_size: int) -> tuple[torch.nn.Module, Any]:
        """(net in eval mode on CPU, ModelInfo)."""
        from eacfer.checkpoint import load_model
        from eacfer.constants import RAFDB_CLASSES
        from eacfer.modelinfo import ModelInfo
        from eacfer.models import create_model, get_backbone_spec

        if self.checkpoint:
            return load_model(self.checkpoint, "cpu")
        spec = get_backbone_spec(self.backbone)
        net = create_model(self.backbone, num_classes=len(RAFDB_CLASSES)).eval()
        info = ModelInfo(self.backbone, list(RAFDB_CLASSES), image_size, list(spec.mean), list(spec.std))
        return net, info


def count_params(net: torch.nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BN statistics excluded).

    Example:
        >>> count_params(torch.nn.Linear(10, 7))
        77
    """
    return sum(p.numel() for p in net.parameters())


def count_flops(net: torch.nn.Module, image_size: int) -> int:
    """FLOPs (2·MAC) of one forward pass on a single 3×S×S face.

    Example:
        >>> from eacfer import create_model
        >>> round(count_flops(create_model("mobilenet_v2"), 224) / 1e9, 2)
        0.6
    """
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net.eval()(x)
    return int(counter.get_total_flops())


class Latency(NamedTuple):
    """Milliseconds per face: the median (the figure reported) and the fastest repetition (the least disturbed
    by other work on a shared machine)."""

    median_ms: float
    min_ms: float


def _timed_ms(fn: Callable[[], Any], warmup: int, iters: int, sync: Callable[[], None] | None = None) -> Latency:
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1000.0)
    return Latency(statistics.median(times), min(times))


def torch_latency(net: torch.nn.Module, image_size: int, batch: int, device: str = "cpu",
                  amp_dtype: torch.dtype | None = None, warmup: int = 3, iters: int = 10) -> Latency:
    """Milliseconds **per face** of a forward pass at ``batch`` (float32, or autocast to ``amp_dtype`` on CUDA)."""
    dev = torch.device(device)
    net = net.to(dev).eval()
    x = torch.randn(batch, 3, image_size, image_size, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None

    def fwd() -> Any:
        with torch.inference_mode(), torch.autocast(dev.type, dtype=amp_dtype or torch.float32,
                                                         enabled=amp_dtype is not None):
            return net(x)

    t = _timed_ms(fwd, warmup, iters, sync)
    return Latency(t.median_ms / batch, t.min_ms / batch)


def onnx_latency(model: bytes | str, image_size: int, batch: int, threads: int, warmup: int = 3,
                 iters: int = 10) -> Latency:
    """Milliseconds **per face** of onnxruntime (CPU) at ``batch``."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, 3, image_size, image_size)).astype(np.float32)
    t = _timed_ms(lambda: sess.run(None, {name: x}), warmup, iters)
    return Latency(t.median_ms / batch, t.min_ms / batch)


def synthetic_clip(path: Path, frames: int, size: tuple[int, int] = (640, 480), fps: float = 25.0) -> Path:
    """Write a short MJPG clip of the bundled astronaut photo's face drifting across a gray frame."""
    import cv2
    import numpy as np

    from eacfer.data.imageio import load_image
    from eacfer.utils.atomic import atomic_path

    photo = load_image(Path(__file__).resolve().parent.parent / "assets" / "astronaut.jpg")
    # The face sits at about (172, 66, 106, 106) in the 512×512 photo; a head-and-shoulders crop scaled to
    # ~60 % of the frame height is what a webcam sees and what the short-range detector is made for.
    face = photo[20:250, 110:340]
    w, h = size
    side = int(0.6 * h)
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    fh, fw = face.shape[:2]
    # atomic: a kill mid-write must not leave a short clip that looks complete; ".avi" so OpenCV picks AVI
    with atomic_path(path, suffix=".tmp.avi") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV cannot write an MJPG clip here")
        try:
            for i in range(frames):
                frame = np.full((h, w, 3), 110, np.uint8)
                x = int((w - fw) * (0.5 + 0.4 * np.sin(i / 7.0)))
                y = (h - fh) // 2
                frame[y:y + fh, x:x + fw] = face
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return path


def video_fps(model_path: str, device: str, frames: int, workdir: Path, threads: int | None = None) -> tuple[float, int]:
    """End-to-end frames per second of :meth:`Predictor.stream` over a synthetic clip; (fps, frames with a face)."""
    from eacfer.infer.predictor import Predictor
    from eacfer.infer.runtime.backends import load_classifier

    clip = synthetic_clip(workdir / "bench_clip.avi", frames)
    # use_cache=False: a throw-away benchmark model must not land in the user's ONNX cache
    with Predictor(load_classifier(model_path, device=device, threads=threads, use_cache=False)) as pred:
        it = pred.stream(str(clip))
        first = next(it, None)  # warm-up: detector/classifier initialisation is not per-frame cost
        with_face = int(bool(first and first.faces))
        n, t0 = 0, time.perf_counter()
        for r in it:
            n += 1
            with_face += int(bool(r.faces))
        dt = time.perf_counter() - t0
    return (n / dt if dt > 0 and n else float("nan")), with_face


def measure_model(
    spec: ModelSpec,
    image_size: int | None = None,
    device: str = "cpu",
    batch: int = 16,
    warmup: int = 3,
    iters: int = 10,
    video_frames: int = 60,
    onnx: bool = True,
    workdir: str | os.PathLike[str] | None = None,
    published: Any = None,
) -> dict[str, Any]:
    """Measure one model; returns a row with the :data:`COLUMNS` keys (None where not measured)."""
    from eacfer.checkpoint import save_model
    from eacfer.utils.device import resolve_device

    dev = resolve_device(device)
    net, info = spec.load(image_size or 224)
    size = int(image_size or info.input_size)
    if size != info.input_size:
        info.input_size = size  # measure at the requested size (FLOPs and latency scale with it)
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    notes: list[str] = []
    threads = torch.get_num_threads()
    row.update(name=spec.name, backbone=spec.backbone, model_source=spec.checkpoint or "backbone (random weights)",
               image_size=size, params_m=count_params(net) / 1e6, gflops=count_flops(net, size) / 1e9,
               throughput_batch=batch, threads=threads)
    with tempfile.TemporaryDirectory(prefix="eacfer-bench-", dir=workdir) as tmp:
        tmpd = Path(tmp)
        pt = Path(spec.checkpoint) if spec.checkpoint else tmpd / "model.pt"
        if not spec.checkpoint:
            save_model(pt, net, info)
        row["pt_mb"] = pt.stat().st_size / 1e6
        log.info("%s: %.2f M params, %.2f GFLOP at %d², model.pt %.1f MB", spec.name, row["params_m"],
                 row["gflops"], size, row["pt_mb"])
        row["torch_cpu_b1_ms"], row["torch_cpu_b1_min_ms"] = torch_latency(net, size, 1, "cpu", warmup=warmup,
                                                                           iters=iters)
        row["torch_cpu_batch_ms_per_face"] = torch_latency(net, size, batch, "cpu", warmup=warmup, iters=iters).median_ms
        if onnx:
            from eacfer.export import export_onnx_bytes

            data = export_onnx_bytes(net, info, dynamic_batch=True)
            row["onnx_mb"] = len(data) / 1e6
            row["ort_cpu_b1_ms"], row["ort_cpu_b1_min_ms"] = onnx_latency(data, size, 1, threads, warmup, iters)
            row["ort_cpu_batch_ms_per_face"] = onnx_latency(data, size, batch, threads, warmup, iters).median_ms
        if dev.type == "cuda":
            # the training precision policy of this GPU generation (bf16 ≥ 8.0, fp16 on 7.x, fp32 below): bf16 on
            # a T4 or P100 has no tensor cores and would time slower than fp32
            from eacfer.training.numerics import autocast_dtype, device_capability, precision_for

            amp_name = precision_for(device_capability(dev)).amp_dtype
            amp = autocast_dtype(amp_name)
            row["cuda_amp_dtype"] = amp_name or "float32"
            row["cuda_amp_b1_ms"] = torch_latency(net, size, 1, str(dev), amp_dtype=amp, warmup=warmup,
                                                  iters=iters).median_ms
            row["cuda_amp_batch_ms_per_face"] = torch_latency(net, size, batch, str(dev), amp_dtype=amp,
                                                              warmup=warmup, iters=iters).median_ms
            net.to("cpu")
        if video_frames > 0:
            try:
                fps, with_face = video_fps(str(pt), str(dev), video_frames, tmpd, threads)
                row.update(video_fps=fps, video_frames_with_face=with_face,
                           video_fps_kind=f"end-to-end: decode + MediaPipe detect + align + classify "
                                          f"({'torch' if dev.type == 'cuda' else 'onnxruntime'}), 640x480")
            except Exception as e:  # the detector is an optional native component; cost figures still count
                log.warning("%s: end-to-end video FPS not measured (%s: %s)", spec.name, type(e).__name__, e)
                row["video_fps"] = 1000.0 / row["torch_cpu_b1_ms"]
                row["video_fps_kind"] = "classify only (torch CPU, batch 1): the end-to-end run failed"
                notes.append(f"video: {type(e).__name__}: {e}")
    if spec.checkpoint and info.metrics:
        for key in ("last5_mean_accuracy", "final_accuracy", "best_accuracy", "accuracy"):
            if info.metrics.get(key) is not None:
                row["accuracy"], row["accuracy_metric"] = 100.0 * float(info.metrics[key]), key
                row["accuracy_data"] = accuracy_data(info.train_config)
                break
    if published is not None:
        ref = published.noisy_reference(spec.backbone, "eac")
        if ref is not None and "0.0" in ref["values"]:
            row["published_accuracy"] = ref["values"]["0.0"]
            row["published_source"] = f"{ref['model']}, clean, {ref['metric']} [{ref['source']}]"
    row["notes"] = "; ".join(notes) or None
    return row


def accuracy_data(train_config: dict[str, Any] | None) -> str:
    """Which data a checkpoint's accuracy was measured on (its training run's test split), in words.

    Synthetic sets (``eacfer synth``, the demo) are recognised by the README they carry, so their accuracy
    is never read as a RAF-DB figure next to the published ones.

    Example:
        >>> accuracy_data({"data": "/data/RAF-DB", "format": "rafdb"})
        'RAF-DB (rafdb)'
        >>> accuracy_data(None)
        'unknown data'
    """
    from eacfer.data.synth import README_MARKER

    data = (train_config or {}).get("data")
    if not data:
        return "unknown data"
    readme = Path(str(data)) / "README.txt"
    try:
        if readme.is_file() and README_MARKER in readme.read_text(encoding="utf-8", errors="replace")[:4096]:
            return "synthetic data (eacfer synth), not RAF-DB"
    except OSError:
        pass
    fmt = (train_config or {}).get("format")
    return f"{Path(str(data)).name}" + (f" ({fmt})" if fmt else "")


def measure_models(specs: Sequence[ModelSpec], **kw: Any) -> list[dict[str, Any]]:
    """:func:`measure_model` for each spec, with a progress bar; a model that fails is reported and skipped."""
    from eacfer.utils.progress import progress_bar as tqdm

    rows = []
    for spec in tqdm(specs, desc="efficiency", unit="model", disable=len(specs) < 2):
        try:
            rows.append(measure_model(spec, **kw))
        except (ValueError, OSError, RuntimeError) as e:
            log.error("%s: not measured: %s", spec.name, e)
    return rows


def run_efficiency_bench(specs: Sequence[ModelSpec], out: str | os.PathLike[str], command: str | None = None,
                         plot: bool = True, **kw: Any) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Measure ``specs`` (see :func:`measure_model` for ``kw``) and write the tables, plot and ``bench_meta.json``.

    Example:
        >>> rows, files = run_efficiency_bench([ModelSpec.from_backbone("mobilenet_v2")], "bench/eff")  # doctest: +SKIP
    """
    from eacfer.bench.provenance import META_NAME, provenance
    from eacfer.bench.published import load_published
    from eacfer.utils.atomic import write_json

    if not specs:
        raise ValueError("nothing to measure: give --backbones and/or --checkpoints")
    published = load_published()
    meta = provenance("efficiency", command)  # before measuring: the date is when the run started
    rows = measure_models(specs, published=published, **kw)
    if not rows:
        raise ValueError("no model could be measured (see the errors above)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / META_NAME, meta)
    return rows, write_efficiency_outputs(out, rows, published, meta=meta, plot=plot)
