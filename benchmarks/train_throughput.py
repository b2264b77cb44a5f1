"""Training throughput: reference pipeline vs fast pipeline vs the pure compute bound, in one process.

Same model, same synthetic RAF-DB-sized data (12,271 random 100×100 uint8 images by default), same
batch size. Three measurements, each after a warm-up:

* reference — the faithful path of ``eacfer train --pipeline reference``: decoded images in memory,
  per-image CPU augmentation (:class:`eacfer.data.transforms.EACTrainTransform`) in DataLoader workers,
  :func:`eacfer.training.engine.train_step` (two fp32 forward passes, ``.item()`` per batch);
* fast — ``--pipeline fast``: the uint8 stack resident on the device, batched on-device augmentation,
  :func:`eacfer.training.fast.step.fast_train_step` with bf16 autocast, channels_last, fused Adam, cudnn.benchmark
  (optionally ``torch.compile``), metrics accumulated on the device; a full epoch is timed;
* compute bound — the fast step's model/optimizer on one batch already on the device, repeated: what
  the GPU can do with no data pipeline at all.

GPU (full size, ResNet-50 at 224 — what benchmarks/RESULTS.md reports):
    PYTHONPATH=src python3 benchmarks/train_throughput.py --device cuda --json-out throughput.json
CPU smoke run (tiny sizes; the figures say nothing about a GPU), optionally with the CUDA settings
(bf16 autocast, fused Adam, channels_last) emulated on the CPU to check that code path runs:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_throughput.py --quick [--emulate-cuda-settings]

On CUDA the fast epoch is also run once under ``torch.cuda.set_sync_debug_mode("warn")`` and the
synchronising calls are counted (the design target is a constant handful per epoch, none per batch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from eacfer.data.transforms import EACTrainTransform  # noqa: E402
from eacfer.models import create_model  # noqa: E402
from eacfer.training import engine  # noqa: E402
from eacfer.training.fast.gpu_augment import GPUAugment  # noqa: E402
from eacfer.training.fast.loader import FastLoader  # noqa: E402
from eacfer.training.fast.step import (  # noqa: E402
    FastSettings,
    TwoViewEAC,
    configure_backend,
    fast_train_epoch,
    fast_train_step,
    make_optimizer,
)


class _InMemory(torch.utils.data.Dataset):
    """Decoded images + the reference transform, like FERDataset(cache=True)."""

    def __init__(self, imgs: np.ndarray, labels: np.ndarray, transform: EACTrainTransform):
        self.imgs, self.labels, self.t = imgs, labels, transform

    def __len__(self) -> int:
        return len(self.imgs)

    def __getitem__(self, i: int):
        return self.t(self.imgs[i]), int(self.labels[i]), i


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def bench_reference(args, imgs, labels, device, workers: int) -> dict:
    torch.backends.cudnn.benchmark = False  # as the reference trainer (reproducible kernel choice)
    torch.manual_seed(0)
    model = create_model(args.backbone, num_classes=7).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)  # the reference trainer's optimizer
    ds = _InMemory(imgs, labels, EACTrainTransform(args.image_size))
    dl = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                                     pin_memory=device.type == "cuda", drop_last=True,
                                     persistent_workers=workers > 0)
    _peak_reset(device)
    steps = args.warmup + args.ref_steps
    it = iter(dl)
    done = 0
    t0 = time.perf_counter()
    while done < steps:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(dl)
            continue
        if done == args.warmup:
            _sync(device)
            t0 = time.perf_counter()
        engine.train_step(model, batch, opt, method="eac", lam=5.0, device=device)
        done += 1
    _sync(device)
    sec = time.perf_counter() - t0
    n = args.ref_steps * args.batch_size
    return {"samples_per_s": n / sec, "samples": n, "seconds": sec, "peak_gib": _peak_gib(device), "workers": workers}


def _settings(args, device) -> FastSettings:
    if args.emulate_cuda_settings and device.type != "cuda":
        return FastSettings.for_device("cuda")  # cudnn.benchmark is a no-op off CUDA
    return FastSettings.for_device(device)


def _fast_model(args, device, views: str):
    st = _settings(args, device)
    configure_backend(device, st)  # cudnn.benchmark on CUDA
    torch.manual_seed(0)
    net = create_model(args.backbone, num_classes=7).to(device)
    if st.channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = TwoViewEAC(net, views=views)
    opt = make_optimizer(net.parameters(), 1e-4, 1e-4, device, fused=st.fused_adam)
    if args.compile:
        model = torch.compile(model)
    return model, opt, st


def count_syncs(fn) -> int | None:
    """How many synchronising CUDA calls ``fn()`` makes (None off CUDA)."""
    if not torch.cuda.is_available():
        return None
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def bench_fast(args, imgs, labels, device, views: str, syncs: bool = False) -> dict:
    model, opt, st = _fast_model(args, device, views)
    t_load = time.perf_counter()
    dl = FastLoader(imgs, labels, args.batch_size, device=device, augment=GPUAugment(args.image_size), seed=0,
                    channels_last=st.channels_last, drop_last=True)
    _sync(device)
    load_s = time.perf_counter() - t_load
    _peak_reset(device)
    # warm-up: a few steps (cudnn autotuning, torch.compile) from epoch 0's batches
    for b, batch in enumerate(dl):
        if b >= args.warmup:
            break
        fast_train_step(model, batch, opt, amp=st.amp)
    _sync(device)
    t0 = time.perf_counter()
    stats = fast_train_epoch(model, dl, opt, amp=st.amp, epoch=1, progress=False)  # ends with one sync (.cpu())
    sec = time.perf_counter() - t0
    out = {"samples_per_s": stats["n"] / sec, "samples": stats["n"], "epoch_seconds": sec,
           "upload_seconds": load_s, "peak_gib": _peak_gib(device), "resident": dl.resident,
           "views": views, "compile": args.compile, "settings": st.describe(),
           "train_loss": stats["train_loss"]}
    if syncs and device.type == "cuda":
        out["sync_calls_per_epoch"] = count_syncs(
            lambda: fast_train_epoch(model, dl, opt, amp=st.amp, epoch=2, progress=False))
        out["batches_per_epoch"] = len(dl)
    return out


def bench_compute_bound(args, device, views: str) -> dict:
    model, opt, st = _fast_model(args, device, views)
    g = torch.Generator(device=device).manual_seed(0)
    fmt = torch.channels_last if st.channels_last else torch.contiguous_format
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device, generator=g)
    x = x.contiguous(memory_format=fmt)
    batch = (x, x.flip(-1).contiguous(memory_format=fmt),
             torch.randint(0, 7, (args.batch_size,), device=device, generator=g), None)
    _peak_reset(device)
    for _ in range(args.warmup):
        fast_train_step(model, batch, opt, amp=st.amp)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.bound_steps):
        fast_train_step(model, batch, opt, amp=st.amp)
    _sync(device)
    sec = time.perf_counter() - t0
    n = args.bound_steps * args.batch_size
    return {"samples_per_s": n / sec, "samples": n, "seconds": sec, "peak_gib": _peak_gib(device), "views": views}


def _median_run(runs: list[dict]) -> dict:
    """The run with the median samples/s (all its fields), plus every round's samples/s."""
    ordered = sorted(runs, key=lambda r: r["samples_per_s"])
    out = dict(ordered[len(ordered) // 2])
    out["rounds_samples_per_s"] = [r["samples_per_s"] for r in runs]
    return out


def environment(device: torch.device) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
           "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(),
                   gpu_memory_gib=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1))
    return env


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--backbone", default="resnet50_msceleb")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--src-size", type=int, default=100, help="side of the synthetic decoded images")
    p.add_argument("--n-images", type=int, default=12271, help="RAF-DB's training-set size")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--ref-workers", type=_ints, default=[2, 8],
                   help="DataLoader workers of the reference pipeline, comma-separated (2 = eacfer train's default)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--ref-steps", type=int, default=120)
    p.add_argument("--bound-steps", type=int, default=120)
    p.add_argument("--views", default="split,joint", help="fast-pipeline view modes to measure (first = headline)")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast model")
    p.add_argument("--emulate-cuda-settings", action="store_true",
                   help="on CPU, run the fast path with the CUDA settings (bf16 autocast, fused Adam, channels_last)")
    p.add_argument("--repeats", type=int, default=1, help="interleaved rounds; the median is reported")
    p.add_argument("--quick", action="store_true", help="tiny CPU sizes (smoke run)")
    p.add_argument("--json-out", default=None, help="also write the results as JSON here")
    a = p.parse_args(argv)
    a.views = [v.strip() for v in a.views.split(",") if v.strip()]
    if not a.views or any(v not in ("split", "joint") for v in a.views):
        p.error("--views takes split and/or joint")
    if a.quick:
        a.backbone, a.image_size, a.n_images, a.batch_size = "resnet18", 48, 96, 16
        a.ref_workers, a.warmup, a.ref_steps, a.bound_steps = [0], 2, 4, 4
        a.repeats = max(a.repeats, 3)
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    env = environment(device)
    print(json.dumps(env))
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (args.n_images, args.src_size, args.src_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 7, args.n_images)
    setup = {k: getattr(args, k) for k in ("backbone", "image_size", "src_size", "n_images", "batch_size",
                                           "ref_workers", "views", "compile", "quick", "repeats",
                                           "emulate_cuda_settings")}
    print("setup:", json.dumps(setup))
    runs: dict[str, list[dict]] = {}
    for r in range(args.repeats):  # interleaved, so a busy machine slows every variant alike
        for w in args.ref_workers:
            runs.setdefault(f"reference_w{w}", []).append(bench_reference(args, imgs, labels, device, w))
        for v in args.views:
            runs.setdefault(f"fast_{v}", []).append(bench_fast(args, imgs, labels, device, v, syncs=r == 0))
            runs.setdefault(f"bound_{v}", []).append(bench_compute_bound(args, device, v))
        print(f"round {r + 1}/{args.repeats}: " + ", ".join(
            f"{k} {v[-1]['samples_per_s']:.1f}" for k, v in runs.items()) + " samples/s", flush=True)
    res = {k: _median_run(v) for k, v in runs.items()}
    for k, v in runs.items():  # the sync count is measured in the first round only
        if "sync_calls_per_epoch" in v[0]:
            res[k].update(sync_calls_per_epoch=v[0]["sync_calls_per_epoch"], batches_per_epoch=v[0]["batches_per_epoch"])
            print(f"{k}: {v[0]['sync_calls_per_epoch']} synchronising CUDA calls in an epoch of "
                  f"{v[0]['batches_per_epoch']} batches")
    for k, v in res.items():
        extra = f"  epoch {v['epoch_seconds']:.2f} s, stack upload {v['upload_seconds']:.2f} s" if "epoch_seconds" in v else ""
        print(f"{k:16s}: {v['samples_per_s']:9.1f} samples/s  peak {v['peak_gib'] if v['peak_gib'] is None else round(v['peak_gib'], 2)} GiB{extra}")
    best_ref = max((res[f"reference_w{w}"] for w in args.ref_workers), key=lambda r: r["samples_per_s"])
    head = args.views[0]
    fast, bound = res[f"fast_{head}"], res[f"bound_{head}"]
    ratio = fast["samples_per_s"] / best_ref["samples_per_s"]
    of_bound = fast["samples_per_s"] / bound["samples_per_s"]
    raf_epoch = 12271 / fast["samples_per_s"]
    print(f"headline (views={head}): fast / best reference ({best_ref['workers']} workers) = {ratio:.2f}x ; "
          f"fast / compute bound = {of_bound:.0%} ; RAF-DB epoch (12,271 images) at this rate = {raf_epoch:.1f} s")
    result = {"environment": env, "setup": setup, "results": res, "headline_views": head,
              "fast_over_best_reference": ratio, "fast_over_bound": of_bound, "rafdb_epoch_seconds": raf_epoch}
    if args.json_out:
        from eacfer.utils.atomic import write_json

        write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
