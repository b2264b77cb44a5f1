"""``eacfer demo``: synthesise a small data set, train EAC briefly on CPU, evaluate, report."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="end-to-end demo on synthetic faces (about 8 min on 2 idle CPU cores, reused when run again; "
        "--quick: under a minute)",
        description="Synthesise faces, train EAC on CPU, evaluate, and print where every output went.",
        epilog="example: eacfer demo --out runs/demo",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: 8; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="tiny smoke version (seconds)")
    p.add_argument("--retrain", action="store_true",
                   help="train a new model even when an earlier demo in --out finished one with the same settings "
                   "(reused otherwise); the old model is replaced only once the new one is finished")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from eacfer.demo import format_report, run_demo

    result = run_demo(args.out, epochs=args.epochs, quick=args.quick, progress=not getattr(args, "quiet", False),
                      retrain=args.retrain)
    print(format_report(result))
    return 0
