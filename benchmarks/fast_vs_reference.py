"""Does the fast pipeline reach the reference pipeline's accuracy? Same data, seeds and epochs, several seeds.

Trains ``eacfer.train`` twice per seed on one generated RAF-DB-layout set: ``--pipeline reference`` (the
official fp32 path) and ``--pipeline fast`` with the CUDA settings emulated on the CPU (bf16 autocast, fused
Adam, channels_last: ``FastSettings.for_device("cuda")``), and reports per seed the test accuracy of both
(final epoch, last-5 mean, best) and the paired difference fast − reference, with the seed-to-seed spread of
each pipeline to judge it against. Both evaluate in fp32 (issue 18); the difference comes from training.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/fast_vs_reference.py --seeds 3 --epochs 5 \
        --n-train 280 --n-test 140 --src-size 40 --image-size 32 --variants reference,fast,fast_fp32 --out /tmp/fvr

Tiny on purpose (CPU): ResNet-18 from random initialisation at 32–48 px; prints a markdown table and writes
``fast_vs_reference.json`` / ``.md`` into ``--out``. On a GPU (``--device cuda``) the same command measures the
real fast path, e.g. at full size: ``--backbone resnet18 --image-size 224 --src-size 100 --n-train 12271
--n-test 3068 --epochs 20 --seeds 3 --batch-size 32 --lr 1e-4``.
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
#: variant → (pipeline, fast settings). fast_fp32 = the fast pipeline with the same random streams as ``fast``
#: but no autocast: fast − fast_fp32 isolates bf16, fast_fp32 − reference the pipeline's other differences.
VARIANTS = {"reference": ("reference", {}), "fast": ("fast", EMULATE_CUDA),
            "fast_fp32": ("fast", {**EMULATE_CUDA, "amp": False})}


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


def _reused(cfg: TrainConfig) -> dict | None:
    """A finished run's summary in ``cfg.out`` made with the same settings, else None."""
    import yaml

    try:
        summary = json.loads((Path(cfg.out) / "summary.json").read_text())
        saved = yaml.safe_load((Path(cfg.out) / "config.yaml").read_text())
    except (OSError, ValueError):
        return None
    keys = ("pipeline", "seed", "epochs", "batch_size", "lr", "lam", "image_size", "backbone", "fast_settings")
    same = all(saved.get(k) == v for k, v in cfg.to_dict().items() if k in keys)
    return summary if summary.get("finished") and same and saved.get("train_images") else None


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
    p.add_argument("--device", default="cpu", help="cpu (CUDA settings emulated) or cuda (the real fast path)")
    p.add_argument("--variants", default="reference,fast", help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--reuse", action="store_true",
                   help="keep finished runs already in --out made with the same settings (resume a long measurement)")
    p.add_argument("--out", default=None, help="folder for the runs and the result files (default: a temp folder)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out or tempfile.mkdtemp(prefix="fvr-"))
    out.mkdir(parents=True, exist_ok=True)
    bf16 = bf16_autocast_on_cpu()
    data = generate_rafdb(out / "data", n_train=args.n_train, n_test=args.n_test, seed=1234, size=args.src_size)
    t0, load = time.time(), os.getloadavg()[0]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if variants[0] != "reference" or any(v not in VARIANTS for v in variants):
        p.error(f"--variants: start with reference, then any of {', '.join(VARIANTS)}")
    rows = []
    for seed in range(args.seeds):
        row: dict[str, object] = {"seed": seed}
        for variant in variants:
            pipeline, settings = VARIANTS[variant]
            if args.device != "cpu":  # on a GPU the fast path's own defaults are the CUDA settings
                settings = {k: v for k, v in settings.items() if k == "amp" and not v}
            name = variant if variant != "reference" else "reference"
            cfg = TrainConfig(data=str(data), out=str(out / f"{name}_s{seed}"), backbone=args.backbone,
                              pretrained="none", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              lam=args.lam, image_size=args.image_size, seed=seed, workers=0, device=args.device,
                              pipeline=pipeline, fast_settings=dict(settings), tensorboard=False, progress=False,
                              force=True)
            s = _reused(cfg) if args.reuse else None
            s = s or train(cfg)
            row[variant] = {k: s[k] for k in STATS} | {"amp": s["amp_effective"], "eval_dtype": s["eval_dtype"]}
            print(f"seed {seed} {variant:9s} final {s['final_accuracy']:.4f} last5 {s['last5_mean_accuracy']:.4f} "
                  f"best {s['best_accuracy']:.4f} (amp {s['amp_effective']}, eval {s['eval_dtype']})", flush=True)
        rows.append(row)
    result: dict[str, object] = {
        "command": "benchmarks/fast_vs_reference.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": vars(args) | {"fast_settings": EMULATE_CUDA, "bf16_autocast_on_cpu": bf16},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "load_average_start": load,
        "minutes": (time.time() - t0) / 60, "runs": rows, "stats": {},
    }
    md = [f"| statistic | comparison | A (mean ± sd over {args.seeds} seeds) | B | A − B, paired (mean ± sd) "
          f"| per-seed A − B |", "|---|---|---|---|---|---|"]
    pairs = [(v, "reference") for v in variants[1:]]
    if "fast" in variants and "fast_fp32" in variants:
        pairs.append(("fast", "fast_fp32"))  # bf16 alone: same pipeline, same random streams
    for k in STATS:
        for a_name, b_name in pairs:
            a = [float(r[a_name][k]) for r in rows]  # type: ignore[index]
            b = [float(r[b_name][k]) for r in rows]  # type: ignore[index]
            diff = [x - y for x, y in zip(a, b, strict=True)]
            result["stats"][f"{k}:{a_name}-{b_name}"] = {  # type: ignore[index]
                "a_mean": statistics.fmean(a), "a_sd": spread(a), "b_mean": statistics.fmean(b), "b_sd": spread(b),
                "diff_mean": statistics.fmean(diff), "diff_sd": spread(diff), "diffs": diff}
            md.append(f"| {k} | {a_name} − {b_name} | {statistics.fmean(a):.4f} ± {spread(a):.4f} | "
                      f"{statistics.fmean(b):.4f} ± {spread(b):.4f} | {statistics.fmean(diff):+.4f} ± "
                      f"{spread(diff):.4f} | {', '.join(f'{d:+.4f}' for d in diff)} |")
    (out / "fast_vs_reference.json").write_text(json.dumps(result, indent=2))
    (out / "fast_vs_reference.md").write_text("\n".join(md) + "\n")
    print(f"\nbf16 autocast on this CPU: {bf16}; load average at start {load:.2f}; "
          f"{result['minutes']:.1f} min; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
