"""GPU probe for issue #24: the CUDA paths that crashed, ran slowly or computed something else, run once.

Each stage reports on its own (a failing stage does not stop the others); the exit status is 1 if any failed.

1. ``cross_dataset``  — a FERPlus-class model evaluated on RAF-DB on the device (``SelectLogits``' index).
2. ``resume_convert`` — a fast run (fused Adam, channels_last, autocast) resumed with ``--recipe paper`` and
   with ``channels_last=off``: both train on, with a plain / contiguous optimizer state.
4. ``precision``      — the policy chosen for this GPU (bf16 ≥ 8.0, fp16 + GradScaler 7.x, fp32 below), and
   training-step samples/s under it against fp32 (the issue: "must not be slower than fp32").
5. ``cams_fp32``      — CAMs under the chosen autocast are fp32 and equal the fp32 einsum of the features.
6. ``tf32``           — fp32 evaluation and a ``--recipe paper`` run see TF32 off; ``config.yaml`` says so.

On a GPU (≈ 2–4 minutes on a T4, less on an H100)::

    PYTHONPATH=src python3 benchmarks/gpu_probe.py --json-out gpu_probe.json

CPU dry run (tiny sizes; the CUDA settings emulated where a CPU has them; tested by tests/e2e/test_gpu_probe.py)::

    PYTHONPATH=src python3 benchmarks/gpu_probe.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from eacfer.data.synth import generate_rafdb  # noqa: E402
from eacfer.training.numerics import (  # noqa: E402
    device_capability,
    device_name,
    exact_fp32,
    precision_for,
    tf32_enabled,
)

EMULATED = {"amp": True, "fused_adam": True, "channels_last": True}  # what a CPU can run of the CUDA settings


def _train_cfg(args: argparse.Namespace, data: Path, out: Path, **kw: Any) -> Any:
    from eacfer.training.trainer import TrainConfig

    base = dict(data=str(data), out=str(out), backbone="resnet18", pretrained="none", image_size=args.image_size,
                batch_size=args.batch_size, epochs=1, workers=0, device=args.device, tensorboard=False,
                progress=False)
    base.update(kw)
    return TrainConfig(**base)


def stage_cross_dataset(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    from eacfer.checkpoint import save_model
    from eacfer.data.formats import FERPLUS_CLASSES
    from eacfer.modelinfo import ModelInfo
    from eacfer.models import create_model
    from eacfer.training.evaluation import evaluate_checkpoint

    net = create_model("resnet18", num_classes=len(FERPLUS_CLASSES))
    path = work / "ferplus_model.pt"
    save_model(path, net, ModelInfo("resnet18", list(FERPLUS_CLASSES), args.image_size, [0.5] * 3, [0.5] * 3))
    m = evaluate_checkpoint(path, data, device=args.device, progress=False)
    return {"n": m["n"], "excluded": m["class_mapping"]["model_only_excluded_from_argmax"]}


def stage_resume_convert(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    from eacfer.checkpoint import load_checkpoint
    from eacfer.training.trainer import train

    cuda = torch.device(args.device).type == "cuda"
    fast = {} if cuda else dict(EMULATED)  # on CUDA: the device's own defaults
    out: dict[str, Any] = {}
    for name, second in (("to_paper", dict(recipe="paper")),
                         ("to_contiguous", dict(pipeline="fast", fast_settings={**fast, "channels_last": False}))):
        run = work / f"resume_{name}"
        train(_train_cfg(args, data, run, pipeline="fast", fast_settings=fast))
        first = load_checkpoint(run / "last.pt", map_location="cpu")["optimizer"]["param_groups"][0].get("fused")
        summary = train(_train_cfg(args, data, run, epochs=2, resume=True, **second))
        after = load_checkpoint(run / "last.pt", map_location="cpu")["optimizer"]["param_groups"][0].get("fused")
        if summary["epochs"] != 2:
            raise RuntimeError(f"{name}: {summary['epochs']} epochs")
        out[name] = {"fused_before": first, "fused_after": after, "final_accuracy": summary["final_accuracy"]}
    if out["to_paper"]["fused_after"]:
        raise RuntimeError("the reference pipeline's Adam came back fused from the checkpoint")
    return out


def _steps_per_s(args: argparse.Namespace, settings: Any, steps: int) -> float:
    from eacfer.models import create_model
    from eacfer.training.fast.step import TwoViewEAC, fast_train_step, make_optimizer

    dev = torch.device(args.device)
    net = create_model("resnet18").to(dev)
    fmt = torch.channels_last if settings.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = make_optimizer(net.parameters(), 1e-4, 1e-4, dev, fused=settings.fused_adam)
    scaler = torch.amp.GradScaler(dev.type, enabled=settings.needs_scaler)
    n, s = args.batch_size, args.step_size
    x = torch.randn(n, 3, s, s, device=dev).contiguous(memory_format=fmt)
    batch = (x, x.flip(3), torch.randint(0, 7, (n,), device=dev))
    model = TwoViewEAC(net)
    for i in range(steps + 2):  # 2 warm-up steps
        if i == 2:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
        fast_train_step(model, batch, opt, amp=settings.amp, amp_dtype=settings.amp_dtype, scaler=scaler)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return steps * n / (time.perf_counter() - t0)


def stage_precision(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    from dataclasses import replace

    from eacfer.training.fast.step import FastSettings

    dev = torch.device(args.device)
    chosen = FastSettings.for_device(dev) if dev.type == "cuda" else FastSettings.for_device(dev, **EMULATED)
    fp32 = replace(chosen, amp=False, channels_last=False)
    policy = precision_for(device_capability(dev))
    rates = {"chosen": _steps_per_s(args, chosen, args.steps), "fp32": _steps_per_s(args, fp32, args.steps)}
    out = {"policy": policy.reason, "settings": chosen.describe(), "compile_ok": policy.compile_ok,
           "images_per_s": rates, "speedup_vs_fp32": rates["chosen"] / rates["fp32"]}
    if dev.type == "cuda" and rates["chosen"] < 0.95 * rates["fp32"]:
        raise RuntimeError(f"the chosen precision is slower than fp32: {out}")
    return out


def stage_cams_fp32(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    from eacfer.models import create_model
    from eacfer.training.fast.step import FastSettings, autocast_for

    dev = torch.device(args.device)
    settings = FastSettings.for_device(dev) if dev.type == "cuda" else FastSettings.for_device(dev, **EMULATED)
    net = create_model("resnet18").to(dev).eval()
    x = torch.randn(4, 3, args.step_size, args.step_size, device=dev)
    with torch.no_grad(), autocast_for(dev, settings.amp, settings.amp_dtype):
        feats = net.forward_features(x)
        cams = net.cams_from_features(feats)
    with torch.no_grad(), exact_fp32():
        want = torch.einsum("nchw,kc->nkhw", feats.float(), net.fc.weight.float())
    err = float((cams.float() - want).abs().max() / want.abs().max())
    if cams.dtype != torch.float32 or err > 1e-5:
        raise RuntimeError(f"CAMs {cams.dtype}, relative error {err:.2e}")
    return {"features_dtype": str(feats.dtype), "cams_dtype": str(cams.dtype), "relative_error": err}


def stage_tf32(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    import yaml

    from eacfer.training import engine
    from eacfer.training.trainer import train

    seen: list[dict[str, bool]] = []
    real = engine.train_step

    def spy(*a: Any, **k: Any) -> Any:
        seen.append(tf32_enabled())
        return real(*a, **k)

    before = tf32_enabled()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # as on an A100/H100 by choice
    engine.train_step = spy
    try:
        train(_train_cfg(args, data, work / "paper", recipe="paper"))
    finally:
        engine.train_step = real
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before["matmul"], before["cudnn"]
    cfg = yaml.safe_load((work / "paper" / "config.yaml").read_text())
    if not seen or any(any(s.values()) for s in seen) or cfg["tf32_training"]:
        raise RuntimeError(f"TF32 seen during --recipe paper training: {seen[:1]}, config {cfg['tf32_training']}")
    return {"paper_steps_without_tf32": len(seen), "tf32_training": cfg["tf32_training"]}


STAGES = {"cross_dataset": stage_cross_dataset, "resume_convert": stage_resume_convert,
          "precision": stage_precision, "cams_fp32": stage_cams_fp32, "tf32": stage_tf32}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU dry run)")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {', '.join(STAGES)}")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    args.image_size, args.batch_size, args.step_size, args.steps, n_train = (
        (32, 16, 32, 2, 48) if args.quick else (112, 32, 224, 20, 256))
    report: dict[str, Any] = {"device": device_name(args.device), "capability": device_capability(args.device),
                              "torch": str(torch.__version__), "stages": {}}
    with tempfile.TemporaryDirectory(prefix="eacfer-gpu-probe-") as tmp:
        work = Path(tmp)
        data = generate_rafdb(work / "data", n_train=n_train, n_test=n_train // 2, seed=0, size=48)
        for name in [s.strip() for s in args.stages.split(",") if s.strip()]:
            t0 = time.perf_counter()
            try:
                result = {"ok": True, **STAGES[name](args, data, work)}
            except Exception as e:  # each stage reports on its own
                result = {"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
            result["seconds"] = round(time.perf_counter() - t0, 2)
            report["stages"][name] = result
            print(f"{name}: {'ok' if result['ok'] else 'FAILED'} "
                  f"{json.dumps({k: v for k, v in result.items() if k not in ('ok', 'trace')}, default=str)}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return 0 if all(s["ok"] for s in report["stages"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
