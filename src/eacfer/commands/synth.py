"""``eacfer synth``: write a synthetic dataset in the official RAF-DB layout."""

from __future__ import annotations

import argparse


def _positive_or_zero(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic RAF-DB-layout dataset (drawn faces, for tests and demos)",
        description="Procedurally drawn faces with the 7 RAF-DB expressions, in RAF-DB's official layout "
        "(EmoLabel/list_patition_label.txt + Image/aligned/*_aligned.jpg). Synthetic: never real data.",
        epilog="example: eacfer synth data/synth --train 1400 --test 350 --seed 0 --size 100",
    )
    p.add_argument("out", metavar="OUT", help="output folder (created if missing)")
    p.add_argument(
        "--train", type=_positive_or_zero, default=1400, help="number of train images (default 1400)"
    )
    p.add_argument("--test", type=_positive_or_zero, default=350, help="number of test images (default 350)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--size", type=int, default=100, help="image side in pixels (default 100, like RAF-DB aligned)"
    )
    p.add_argument(
        "--noise-files",
        action="store_true",
        help="also write EmoLabel/noise01/02/03.txt (10/20/30%% label noise)",
    )
    p.add_argument("--originals", action="store_true",
                   help="also write RAF-DB's originals: each face placed in a larger scene (Image/original) with its "
                   "box (Annotation/boundingbox) and five landmarks (Annotation/manual), for "
                   "`eacfer eval --through-detector`")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from eacfer.data.synth import generate_rafdb

    out = generate_rafdb(args.out, n_train=args.train, n_test=args.test, seed=args.seed, size=args.size,
                         label_noise_files=args.noise_files, progress=not getattr(args, "quiet", False),
                         originals=args.originals)  # fmt: skip
    print(f"wrote {args.train} train + {args.test} test synthetic {args.size}x{args.size} faces to {out}")
    print(f"  labels: {out / 'EmoLabel' / 'list_patition_label.txt'}")
    print(f"  images: {out / 'Image' / 'aligned'}")
    if args.originals:
        print(f"  originals: {out / 'Image' / 'original'} (boxes and landmarks under {out / 'Annotation'})")
    if args.noise_files:
        print(f"  noisy train labels: {out / 'EmoLabel'}/noise01.txt, noise02.txt, noise03.txt")
    return 0
