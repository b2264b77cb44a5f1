"""Calibration, flip TTA and the in-the-wild gap on synthetic RAF-DB (with originals), for two backbones (#28).

For each backbone: train on a synthetic RAF-DB with ``--val-fraction`` held out, fit the temperature on that
held-out part (``eacfer calibrate``), evaluate on the test split (ECE/NLL/Brier before and after), evaluate
again with ``--tta flip`` (accuracy change and evaluation time), and evaluate through the detector on the
generated originals (faces found, accuracy on eacfer's crops vs the aligned crops). Prints a Markdown table
and writes every figure to ``OUT/results.json``.

    .venv/bin/python benchmarks/confidence_wild.py --out /tmp/confidence_wild
    .venv/bin/python benchmarks/confidence_wild.py --backbones resnet18 --epochs 2 --train 280 --test 70

Synthetic cartoon faces, tiny models trained for a few epochs on a CPU: the figures show the method and the
size of effects on this data, not accuracy on real faces (docs/CONFIDENCE.md says how to measure yours).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/confidence_wild")
    ap.add_argument("--backbones", nargs="+", default=["resnet18", "mobilenet_v2"])
    ap.add_argument("--train", type=int, default=560)
    ap.add_argument("--test", type=int, default=140)
    ap.add_argument("--size", type=int, default=64, help="synthetic aligned face size")
    ap.add_argument("--image-size", type=int, default=64, help="model input size")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--val-fraction", type=float, default=0.15)
    # as the demo (eacfer.demo.DemoSettings): from random init, the paper's λ=5 keeps a ResNet-18 on the
    # majority class for many epochs (the consistency term dominates while nothing is learned); λ=1 learns
    ap.add_argument("--lam", type=float, default=1.0)
    args = ap.parse_args(argv)

    import torch

    from eacfer.data.synth import generate_rafdb
    from eacfer.infer.jobs.wild_eval import evaluate_through_detector
    from eacfer.training.calibrate import calibrate_checkpoint
    from eacfer.training.evaluation import evaluate_checkpoint
    from eacfer.training.trainer import TrainConfig, train

    torch.set_num_threads(2)
    out = Path(args.out)
    data = generate_rafdb(out / "RAF", n_train=args.train, n_test=args.test, seed=0, size=args.size, originals=True)
    (out / "settings.json").write_text(json.dumps(vars(args), indent=1))
    results = {}
    for bb in args.backbones:
        run = out / bb
        t0 = time.perf_counter()
        train(TrainConfig(data=str(data), out=str(run), backbone=bb, pretrained="none", epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, image_size=args.image_size, workers=0, device="cpu",
                          progress=False, tensorboard=False, val_fraction=args.val_fraction, lam=args.lam,
                          force=True))
        train_s = time.perf_counter() - t0
        model = run / "model.pt"
        cal = calibrate_checkpoint(model, data, device="cpu", progress=False)
        t0 = time.perf_counter()
        plain = evaluate_checkpoint(model, data, out_dir=run / "eval", device="cpu", progress=False)
        plain_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        flip = evaluate_checkpoint(model, data, out_dir=run / "eval_flip", device="cpu", progress=False, tta="flip")
        flip_s = time.perf_counter() - t0
        wild = evaluate_through_detector(model, data, out_dir=run / "wild", progress=False)
        c = plain["confidence"]
        results[bb] = {
            "train_s": round(train_s, 1), "temperature": cal["temperature"], "calibration_n": cal["n"],
            "accuracy": plain["accuracy"], "accuracy_flip": flip["accuracy"],
            "eval_s": round(plain_s, 2), "eval_flip_s": round(flip_s, 2),
            "ece_before": c["before"]["ece"], "ece_after": c["after"]["ece"] if c["after"] else None,
            "nll_before": c["before"]["nll"], "nll_after": c["after"]["nll"] if c["after"] else None,
            "brier_before": c["before"]["brier"], "brier_after": c["after"]["brier"] if c["after"] else None,
            "wild": {k: wild[k] for k in ("originals", "faces_found", "accuracy_own_crops", "accuracy_aligned_crops",
                                          "gap", "accuracy_end_to_end", "framing")},
            "wild_landmarks": {k: v for k, v in evaluate_through_detector(
                model, data, out_dir=run / "wild_landmarks", progress=False, align="landmarks").items()
                if k in ("faces_found", "accuracy_own_crops", "gap", "accuracy_end_to_end")},
        }
        print(bb, json.dumps(results[bb]), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print("\n| backbone | T | ECE before → after | NLL before → after | Brier before → after | accuracy | "
          "with flip TTA | eval time plain / flip | faces found | own crops | aligned crops | gap |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for bb, r in results.items():
        w = r["wild"]
        print(f"| {bb} | {r['temperature']:.2f} | {r['ece_before']:.3f} → {r['ece_after']:.3f} | "
              f"{r['nll_before']:.3f} → {r['nll_after']:.3f} | {r['brier_before']:.3f} → {r['brier_after']:.3f} | "
              f"{r['accuracy']:.3f} | {r['accuracy_flip']:.3f} | {r['eval_s']:.1f} s / {r['eval_flip_s']:.1f} s | "
              f"{w['faces_found']}/{w['originals']} | {w['accuracy_own_crops']} | {w['accuracy_aligned_crops']} | "
              f"{w['gap']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
