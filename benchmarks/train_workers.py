"""`eacfer train --workers N`: one epoch per worker count, alternating, on a synthetic set (#30 item 11).

Each round trains a fresh run folder for every ``--workers`` value in turn (0, 2, 0, 2, ...), so a change in the
machine's load hits both sides; prints the epoch seconds (``metrics.csv``), the wall time of the whole command,
the 1-minute load average before and after, and the epoch's mean training loss (which must not depend on the
worker count).

    python benchmarks/train_workers.py --train 256 --test 64 --image-size 112 --backbone mobilenet_v2 --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _load1() -> float:
    return os.getloadavg()[0]


def _eacfer(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "eacfer", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=256)
    ap.add_argument("--test", type=int, default=64)
    ap.add_argument("--size", type=int, default=100, help="synthetic image side")
    ap.add_argument("--image-size", type=int, default=112, help="training input size")
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", default="0,2", help="comma-separated worker counts, run in this order each round")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="eacfer-workers-") as tmp:
        data = Path(tmp) / "synth"
        _eacfer("synth", str(data), "--train", str(args.train), "--test", str(args.test), "--size", str(args.size),
                "-q")
        print(f"cpus {os.cpu_count()}; {args.train} train / {args.test} test images of {args.size} px, "
              f"{args.backbone} at {args.image_size} px, batch {args.batch_size}, 1 epoch, --pretrained none")
        print("round  workers  epoch_s  wall_s  load1_before  load1_after  train_loss")
        for r in range(1, args.rounds + 1):
            for w in counts:
                out = Path(tmp) / f"run-{r}-{w}"
                before, t0 = _load1(), time.perf_counter()
                _eacfer("train", "--data", str(data), "--out", str(out), "--backbone", args.backbone,
                        "--pretrained", "none", "--epochs", "1", "--image-size", str(args.image_size),
                        "--batch-size", str(args.batch_size), "--workers", str(w), "--device", "cpu", "-q")
                wall = time.perf_counter() - t0
                with open(out / "metrics.csv", newline="") as f:
                    row = list(csv.DictReader(f))[-1]
                print(f"{r:5d}  {w:7d}  {float(row['seconds']):7.1f}  {wall:6.1f}  {before:12.2f}  {_load1():11.2f}  "
                      f"{float(row['train_loss']):.6f}", flush=True)


if __name__ == "__main__":
    main()
