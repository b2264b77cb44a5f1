"""CUDA smoke check of ``eacfer train --pipeline fast``: what the CPU test suite cannot run.

On a GPU: trains a small model on a synthetic RAF-DB-shaped set with the fast pipeline (bf16 autocast,
fused Adam, channels_last, cuDNN autotuning, CUDA generators, the uint8 stack resident on the GPU),
interrupts after one epoch and resumes, compares the resumed run with an uninterrupted one, runs one epoch
under ``torch.compile`` (inductor), counts the synchronising CUDA calls of a fast epoch, and checks a
one-step fp32 equivalence of the fast and reference paths on the GPU. Each stage reports on its own (a
failing stage does not stop the others); the exit status is 1 if any stage failed.

    PYTHONPATH=src python3 benchmarks/cuda_smoke.py --json-out smoke.json
CPU dry run of the same stages (tiny sizes; ``--emulate-cuda-settings`` runs bf16 autocast, fused Adam
and channels_last on the CPU, i.e. ``eacfer train --fast-settings amp=on,fused_adam=on,channels_last=on``):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cuda_smoke.py --device cpu --quick [--emulate-cuda-settings]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from eacfer.data.synth import generate_rafdb  # noqa: E402
from eacfer.data.transforms import EACTrainTransform  # noqa: E402
from eacfer.models import create_model  # noqa: E402
from eacfer.training import engine  # noqa: E402
from eacfer.training.fast.gpu_augment import GPUAugment  # noqa: E402
from eacfer.training.fast.loader import FastLoader  # noqa: E402
from eacfer.training.fast.step import (  # noqa: E402
    FastSettings,
    TwoViewEAC,
    fast_train_epoch,
    fast_train_step,
    make_optimizer,
)
from eacfer.training.trainer import TrainConfig, read_metrics_csv, train  # noqa: E402


def _overrides(args) -> dict[str, bool]:
    """``fast_settings`` overrides: the CUDA defaults on a CPU with --emulate-cuda-settings, else none."""
    if args.emulate_cuda_settings and torch.device(args.device).type != "cuda":
        return {"amp": True, "fused_adam": True, "channels_last": True}
    return {}


def _cfg(args, data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), backbone=args.backbone, image_size=args.image_size,
                batch_size=args.batch_size, epochs=2, workers=0, device=args.device, pipeline="fast",
                tensorboard=False, progress=False, fast_settings=_overrides(args), pretrained="none")  # smoke: random init
    base.update(kw)
    return TrainConfig(**base)


def stage_train_resume(args, data: Path, work: Path) -> dict:
    t0 = time.perf_counter()
    full = train(_cfg(args, data, work / "full"))
    full_s = time.perf_counter() - t0
    train(_cfg(args, data, work / "part", epochs=1))
    train(_cfg(args, data, work / "part", resume=True))
    a = read_metrics_csv(work / "full" / "metrics.csv")
    b = read_metrics_csv(work / "part" / "metrics.csv")
    diffs = {k: max(abs(float(ra[k]) - float(rb[k])) for ra, rb in zip(a, b, strict=True))
             for k in ("train_loss", "train_accuracy", "test_accuracy", "lr")}
    import yaml

    cfg = yaml.safe_load((work / "full" / "config.yaml").read_text())
    return {"seconds_2_epochs": full_s, "final_accuracy": full["final_accuracy"],
            "epoch_seconds": [float(r["seconds"]) for r in a],
            "fast_settings_effective": cfg.get("fast_settings_effective"),
            "amp_effective": cfg.get("amp_effective"), "resume_max_abs_diff": diffs,
            # cuDNN autotuning may pick other kernels in the resumed process: close, not bit-exact
            "resume_close": all(v < 0.05 for v in diffs.values())}


def stage_compile(args, data: Path, work: Path) -> dict:
    t0 = time.perf_counter()
    s = train(_cfg(args, data, work / "compiled", epochs=1, compile=True))
    return {"seconds_1_epoch_incl_compile": time.perf_counter() - t0, "final_accuracy": s["final_accuracy"]}


def stage_syncs(args, device: torch.device) -> dict:
    from train_throughput import count_syncs  # same folder

    st = FastSettings.for_device(device, **_overrides(args))
    net = create_model(args.backbone, num_classes=7).to(device)
    if st.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = make_optimizer(net.parameters(), 1e-4, 1e-4, device, fused=st.fused_adam)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (8 * args.batch_size, 100, 100, 3), dtype=np.uint8)
    dl = FastLoader(imgs, rng.integers(0, 7, len(imgs)), args.batch_size, device=device,
                    augment=GPUAugment(args.image_size), channels_last=st.channels_last)
    model = TwoViewEAC(net)
    fast_train_epoch(model, dl, opt, amp=st.amp, epoch=1, progress=False)  # warm-up (cuDNN autotuning)
    n = count_syncs(lambda: fast_train_epoch(model, dl, opt, amp=st.amp, epoch=2, progress=False))
    return {"sync_calls_per_epoch": n, "batches_per_epoch": len(dl)}


def stage_equivalence(args, device: torch.device) -> dict:
    """fp32, augmentation off: fast step vs reference step on the GPU, same weights and images."""
    torch.manual_seed(0)
    ref_net = create_model(args.backbone, num_classes=7).to(device).train()
    fast_net = copy.deepcopy(ref_net)
    ref_opt = torch.optim.Adam(ref_net.parameters(), lr=1e-4, weight_decay=1e-4)
    fast_opt = make_optimizer(fast_net.parameters(), 1e-4, 1e-4, device, fused=False)
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (16, 100, 100, 3), dtype=np.uint8)
    labels = rng.integers(0, 7, 16)
    t = EACTrainTransform(args.image_size, augment=False)
    views = [t(im) for im in imgs]
    ref_batch = ((torch.stack([v[0] for v in views]), torch.stack([v[1] for v in views])),
                 torch.as_tensor(labels), torch.arange(16))
    prev = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        ref = engine.train_step(ref_net, ref_batch, ref_opt, method="eac", lam=5.0, device=device)
        batch = next(iter(FastLoader(imgs, labels, 16, device=device, augment=GPUAugment(args.image_size, augment=False),
                                     shuffle=False)))
        out = fast_train_step(TwoViewEAC(fast_net), batch, fast_opt, lam=5.0, amp=False)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = prev
    loss_rel = abs(float(out["loss"]) - float(ref["loss"])) / max(abs(float(ref["loss"])), 1e-12)
    grad_rel = max(float((p.grad - q.grad).norm() / q.grad.norm().clamp_min(1e-12))
                   for p, q in zip(fast_net.parameters(), ref_net.parameters(), strict=True) if q.grad is not None)
    return {"loss_rel_diff": loss_rel, "max_grad_rel_diff": grad_rel, "equal": loss_rel < 1e-4 and grad_rel < 1e-3}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-train", type=int, default=640)
    p.add_argument("--n-test", type=int, default=160)
    p.add_argument("--stages", default="equivalence,train_resume,syncs,compile")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CPU dry run)")
    p.add_argument("--emulate-cuda-settings", action="store_true",
                   help="on CPU: bf16 autocast, fused Adam and channels_last, as on CUDA")
    p.add_argument("--json-out", default=None)
    a = p.parse_args(argv)
    if a.quick:
        a.image_size, a.batch_size, a.n_train, a.n_test = 32, 8, 48, 16
    a.stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    return a


def main(argv=None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    device = torch.device(args.device)
    env = {"torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    print(json.dumps(env), flush=True)
    results: dict = {"environment": env, "stages": {}}
    failed = []
    with tempfile.TemporaryDirectory(prefix="eacfer-cuda-smoke-") as tmp:
        work = Path(tmp)
        data = generate_rafdb(work / "data", n_train=args.n_train, n_test=args.n_test, seed=0, size=100)
        for name in args.stages:
            t0 = time.perf_counter()
            try:
                if name == "train_resume":
                    r = stage_train_resume(args, data, work)
                elif name == "compile":
                    r = stage_compile(args, data, work)
                elif name == "syncs":
                    r = stage_syncs(args, device)
                elif name == "equivalence":
                    r = stage_equivalence(args, device)
                else:
                    raise ValueError(f"unknown stage {name!r}")
                ok = r.get("resume_close", True) and r.get("equal", True)
                r["status"] = "ok" if ok else "MISMATCH"
            except Exception as e:  # report and go on: one broken stage must not hide the others
                traceback.print_exc()
                r = {"status": "FAILED", "error": f"{type(e).__name__}: {e}"}
            r["stage_seconds"] = time.perf_counter() - t0
            if r["status"] != "ok":
                failed.append(name)
            results["stages"][name] = r
            print(f"{name}: {json.dumps(r, default=str)}", flush=True)
    results["failed"] = failed
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=str))
    print("cuda smoke:", "all stages ok" if not failed else f"FAILED stages: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
