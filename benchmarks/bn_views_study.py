"""Does running x and x′ as one 2N batch ("joint") instead of two N batches ("split") change accuracy?

The two differ only through BatchNorm: joint normalises over both views and updates the running
statistics once per step; split (the reference) normalises each view on its own and updates them twice.
This trains a small BatchNorm CNN under the real EAC head and loss, with the fast pipeline's exact
augmentation, on a synthetic 7-class image set, in both modes from the same seeds (same initial weights,
same batches, same augmentation draws), and reports the test accuracy and the paired difference.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bn_views_study.py --seeds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from eacfer.constants import RAFDB_CLASSES  # noqa: E402
from eacfer.data.labels import inject_symmetric_noise  # noqa: E402
from eacfer.models.eac import EACNet  # noqa: E402
from eacfer.training.fast.gpu_augment import GPUAugment  # noqa: E402
from eacfer.training.fast.loader import FastLoader  # noqa: E402
from eacfer.training.fast.step import TwoViewEAC, fast_evaluate, fast_train_epoch, make_optimizer  # noqa: E402


def small_bn_net(seed: int, width: int = 24) -> EACNet:
    torch.manual_seed(seed)

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    trunk = nn.Sequential(*block(3, width), *block(width, 2 * width), *block(2 * width, 4 * width))
    return EACNet(trunk, 4 * width, num_classes=7, backbone_name="small-bn")


def faces(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class = position and colour of a soft blob on a noisy background (fairly hard at 32 px)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, size=n)
    imgs = rng.normal(90, 40, size=(n, size, size, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(n):
        c = labels[k]
        cy = size * (0.3 + 0.4 * ((c // 3) % 2)) + rng.normal(0, 3.5)
        cx = size * (0.25 + 0.25 * (c % 3)) + rng.normal(0, 3.5)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size * 0.1) ** 2))
        colour = np.array([60 if c % 2 else 15, 15 + 18 * (c % 4), 60 if c >= 4 else 8])
        imgs[k] += blob[..., None] * colour
    return np.clip(imgs, 0, 255).astype(np.uint8), labels.astype(np.int64)


def run(views: str, flip_view: str, noise: float, seed: int, args, data) -> float:
    (tr_x, tr_y), (te_x, te_y) = data
    if noise > 0:
        tr_y = inject_symmetric_noise(tr_y, noise, 7, seed)
    net = small_bn_net(seed)
    model = TwoViewEAC(net, views)
    opt = make_optimizer(net.parameters(), args.lr, 1e-4, torch.device("cpu"))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    dl = FastLoader(tr_x, tr_y, args.batch_size, augment=GPUAugment(args.size, flip_view=flip_view), seed=seed)
    for ep in range(1, args.epochs + 1):
        fast_train_epoch(model, dl, opt, lam=5.0, epoch=ep, progress=False)
        sched.step()
    test = FastLoader(te_x, te_y, 256, eval_transform=GPUAugment(args.size))
    return fast_evaluate(model, test, RAFDB_CLASSES)["accuracy"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--n-train", type=int, default=1200)
    p.add_argument("--n-test", type=int, default=600)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = (faces(args.n_train, 40, 100), faces(args.n_test, 40, 200))
    settings = [("mirrored", 0.0), ("independent", 0.3)]
    out = {"args": vars(args), "results": []}
    for flip_view, noise in settings:
        acc = {"split": [], "joint": []}
        for seed in range(args.seeds):
            for views in ("split", "joint"):
                t0 = time.perf_counter()
                acc[views].append(run(views, flip_view, noise, seed, args, data))
                print(f"{flip_view:11s} noise {noise:.1f} seed {seed} {views:5s}: acc {acc[views][-1]:.4f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
        diffs = [j - s for s, j in zip(acc["split"], acc["joint"], strict=True)]
        sem = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
        row = {"flip_view": flip_view, "label_noise": noise, "split": acc["split"], "joint": acc["joint"],
               "split_mean": statistics.mean(acc["split"]), "joint_mean": statistics.mean(acc["joint"]),
               "paired_diff_mean": statistics.mean(diffs), "paired_diff_sem": sem}
        out["results"].append(row)
        print(json.dumps(row), flush=True)
    if args.json_out:
        from eacfer.utils.atomic import write_json

        write_json(args.json_out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
