"""``eacfer calibrate``: fit a model's softmax temperature on a calibration split (never the test split)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "calibrate",
        help="fit a model's confidence calibration (temperature) on a validation split",
        description="Temperature scaling: one scalar T, fitted by minimising the negative log-likelihood on a "
        "calibration split, stored in the model file (and every ONNX export of it); every runtime then reports "
        "softmax(logits / T). Accuracy is unchanged. The test split is refused. RAF-DB has no validation split: "
        "train with --val-fraction 0.1 and calibrate on that held-out part (--split val, the default); FERPlus "
        "uses its PublicTest split.",
        epilog="example: eacfer calibrate --checkpoint runs/eac/model.pt --data data/RAF-DB",
    )
    p.add_argument("--checkpoint", required=True, help="model file (RUN_DIR/model.pt)")
    p.add_argument("--data", required=True, help="dataset folder (or a FERPlus CSV)")
    p.add_argument("--split", default="val",
                   help="val (default): the dataset's validation split (FERPlus PublicTest), else the part of train "
                   "the model's training held out (eacfer train --val-fraction); or a split name other than test")
    p.add_argument("--out", default=None, help="write the calibrated model here (default: replace --checkpoint)")
    p.add_argument("--format", default=None, help="dataset format (default: auto-detect)")
    p.add_argument("--classes", type=int, choices=(7, 8), default=None, help="FERPlus / AffectNet class count")
    p.add_argument("--crop-cache", default=None, help="AffectNet face-crop cache folder")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--strict", action="store_true", help="stop at the first broken image")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from eacfer.training.calibrate import calibrate_checkpoint

    r = calibrate_checkpoint(args.checkpoint, args.data, split=args.split, out=args.out, format=args.format,
                             device=args.device, batch_size=args.batch_size, workers=args.workers,
                             strict=args.strict, progress=not getattr(args, "quiet", False), classes=args.classes,
                             crop_cache=args.crop_cache)
    print(f"temperature {r['temperature']:.4f} fitted on {r['format']} {r['split']} (n={r['n']})")
    print(f"  NLL   {r['nll_before']:.4f} -> {r['nll_after']:.4f}")
    print(f"  ECE   {r['ece_before']:.4f} -> {r['ece_after']:.4f}")
    print(f"  Brier {r['brier_before']:.4f} -> {r['brier_after']:.4f}")
    print(f"model: {r['model']}")
    return 0
