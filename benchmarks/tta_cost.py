"""What ``--tta flip`` costs per face: classifier time of a batch of face crops with and without the mirror pass.

    .venv/bin/python benchmarks/tta_cost.py                       # resnet18 and mobilenet_v2, random weights
    .venv/bin/python benchmarks/tta_cost.py --checkpoint model.pt

Random-weight models cost what trained ones cost (same graph); the onnxruntime CPU backend, as
``eacfer predict`` uses on a CPU. Median of ``--repeats`` runs, alternating plain / flip.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", nargs="*", default=None)
    ap.add_argument("--backbones", nargs="+", default=["resnet18", "mobilenet_v2"])
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--faces", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.infer.predictor import Predictor
    from eacfer.modelinfo import ModelInfo

    tmp = Path(tempfile.mkdtemp())
    models = list(args.checkpoint or [])
    if not models:
        for bb in args.backbones:
            torch.manual_seed(0)
            path = tmp / f"{bb}.pt"
            save_model(path, create_model(bb), ModelInfo(bb, list(RAFDB_CLASSES), args.size, list(IMAGENET_MEAN),
                                                         list(IMAGENET_STD)))
            models.append(str(path))
    crops = np.random.default_rng(0).integers(0, 256, (args.faces, args.size, args.size, 3), dtype=np.uint8)
    print(f"| model | {args.faces} faces, plain | with flip TTA | ratio |\n|---|---|---|---|")
    for m in models:
        plain = Predictor.from_checkpoint(m, detector="none", backend="onnxruntime")
        flip = Predictor(plain.classifier, detector="none", tta="flip")
        size = plain.input_size
        batch = crops if size == args.size else np.stack([np.resize(c, (size, size, 3)) for c in crops])
        times: dict[str, list[float]] = {"plain": [], "flip": []}
        for p in (plain, flip):  # warm-up
            p.probabilities(batch)
        for _ in range(args.repeats):
            for name, p in (("plain", plain), ("flip", flip)):
                t0 = time.perf_counter()
                p.probabilities(batch)
                times[name].append((time.perf_counter() - t0) * 1000)
        a, b = statistics.median(times["plain"]), statistics.median(times["flip"])
        print(f"| {Path(m).stem} ({size} px) | {a:.1f} ms | {b:.1f} ms | {b / a:.2f}× |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
