"""Does the fast pipeline reach the reference pipeline's accuracy? Same data, seeds and epochs, several seeds.

Trains ``eacfer.train`` twice per seed on one generated RAF-DB-layout set: ``--pipeline reference`` (the
official fp32 path) and ``--pipeline fast`` with the CUDA settings emulated on the CPU (bf16 autocast, fused
Adam, channels_last: ``FastSettings.for_device("cuda")``), and reports per seed the test accuracy of both
(final epoch, last-5 mean, best) and the paired difference fast − reference, with the seed-to-seed spread of
each pipeline to judge it against. Both evaluate in fp32 (issue 18); the difference comes from training.

    nice .venv/bin/python benchmarks/fast_vs_reference.py --seeds 3 --out /tmp/fvr

Tiny on purpose (CPU): ResNet-18 from random initialisation, ``--image-size`` 40 px; prints a markdown table
and writes ``fast_vs_reference.json`` / ``.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from eacfer.data.synth import generate_rafdb  # noqa: E402
from eacfer.training.trainer import TrainConfig, train  # noqa: E402

STATS = ("final_accuracy", "last5_mean_accuracy", "best_accuracy")
EMULATE_CUDA = {"amp": True, "fused_adam": True, "channels_last": True}


def bf16_autocast_on_cpu() -> bool:
    """Whether this CPU build runs a convolution under bf16 autocast (else the fast run is fp32)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = torch.nn.functional.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3))
        return y.dtype == torch.bfloat16
    except Exception:  # noqa: BLE001 — any failure means "not supported here"
        return False


def spread(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--n-train", type=int, default=420)
    p.add_argument("--n-test", type=int, default=210)
    p.add_argument("--src-size", type=int, default=48)
    p.add_argument("--image-size", type=int, default=40)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lam", type=float, default=1.0, help="λ=1: a random-init ResNet-18 learns (see demo.py)")
    p.add_argument("--out", default=None, help="folder for the runs and the result files (default: a temp folder)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out or tempfile.mkdtemp(prefix="fvr-"))
    out.mkdir(parents=True, exist_ok=True)
    bf16 = bf16_autocast_on_cpu()
    data = generate_rafdb(out / "data", n_train=args.n_train, n_test=args.n_test, seed=1234, size=args.src_size)
    t0, load = time.time(), os.getloadavg()[0]
    rows = []
    for seed in range(args.seeds):
        row: dict[str, object] = {"seed": seed}
        for pipeline in ("reference", "fast"):
            cfg = TrainConfig(data=str(data), out=str(out / f"{pipeline}_s{seed}"), backbone=args.backbone,
                              pretrained="none", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              lam=args.lam, image_size=args.image_size, seed=seed, workers=0, device="cpu",
                              pipeline=pipeline, fast_settings=dict(EMULATE_CUDA) if pipeline == "fast" else {},
                              tensorboard=False, progress=False, force=True)
            s = train(cfg)
            row[pipeline] = {k: s[k] for k in STATS} | {"amp": s["amp_effective"], "eval_dtype": s["eval_dtype"]}
            print(f"seed {seed} {pipeline:9s} final {s['final_accuracy']:.4f} last5 {s['last5_mean_accuracy']:.4f} "
                  f"best {s['best_accuracy']:.4f} (amp {s['amp_effective']}, eval {s['eval_dtype']})", flush=True)
        rows.append(row)
    result: dict[str, object] = {
        "command": "benchmarks/fast_vs_reference.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": vars(args) | {"fast_settings": EMULATE_CUDA, "bf16_autocast_on_cpu": bf16},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "load_average_start": load,
        "minutes": (time.time() - t0) / 60, "runs": rows, "stats": {},
    }
    md = [f"| statistic | reference (mean ± sd over {args.seeds} seeds) | fast | fast − reference, paired (mean ± sd) "
          f"| per-seed differences |", "|---|---|---|---|---|"]
    for k in STATS:
        ref = [float(r["reference"][k]) for r in rows]  # type: ignore[index]
        fast = [float(r["fast"][k]) for r in rows]  # type: ignore[index]
        diff = [f - r for f, r in zip(fast, ref, strict=True)]
        result["stats"][k] = {"reference_mean": statistics.fmean(ref), "reference_sd": spread(ref),  # type: ignore[index]
                              "fast_mean": statistics.fmean(fast), "fast_sd": spread(fast),
                              "diff_mean": statistics.fmean(diff), "diff_sd": spread(diff), "diffs": diff}
        md.append(f"| {k} | {statistics.fmean(ref):.4f} ± {spread(ref):.4f} | {statistics.fmean(fast):.4f} ± "
                  f"{spread(fast):.4f} | {statistics.fmean(diff):+.4f} ± {spread(diff):.4f} | "
                  f"{', '.join(f'{d:+.4f}' for d in diff)} |")
    (out / "fast_vs_reference.json").write_text(json.dumps(result, indent=2))
    (out / "fast_vs_reference.md").write_text("\n".join(md) + "\n")
    print(f"\nbf16 autocast on this CPU: {bf16}; load average at start {load:.2f}; "
          f"{result['minutes']:.1f} min; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
