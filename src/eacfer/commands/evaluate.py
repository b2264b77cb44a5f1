"""``eacfer eval``: evaluate a model file on a dataset split."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on a dataset split",
        description="Accuracy, mean-class accuracy, per-class accuracy, confusion matrix and predictions.",
        epilog="example: eacfer eval --data data/RAF-DB --checkpoint runs/eac/model.pt --out runs/eac/eval",
    )
    p.add_argument("--data", required=True, help="dataset folder (or fer2013 CSV)")
    p.add_argument("--checkpoint", required=True, help="model file (RUN_DIR/model.pt)")
    p.add_argument("--split", choices=("train", "test"), default="test", help="which split of --data to evaluate")
    p.add_argument("--format", default=None, help="dataset format (default: auto-detect)")
    p.add_argument("--out", required=True, help="folder for metrics.json, confusion.png, predictions.csv")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=64, help="images per evaluation batch")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (0: load in this process)")
    p.add_argument("--strict", action="store_true", help="stop at the first broken image")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from eacfer.training.evaluation import evaluate_checkpoint

    m = evaluate_checkpoint(args.checkpoint, args.data, split=args.split, format=args.format, out_dir=args.out,
                            device=args.device, batch_size=args.batch_size, workers=args.workers,
                            strict=args.strict, progress=not getattr(args, "quiet", False))
    print(f"accuracy {m['accuracy']:.4f}  mean-class accuracy {m['mean_class_accuracy']:.4f}  n={m['n']}")
    for name, acc in m["per_class"].items():
        print(f"  {name:<12} {'-' if acc is None else f'{acc:.4f}'}")
    for what, path in m["outputs"].items():
        print(f"{what}: {path}")
    return 0
