"""How much do labels change when each tracked face is classified every N-th frame (``--classify-every N``)?

Runs ``eacfer video``'s ``run_video`` twice per clip on the same predictor — every face on every frame
(``classify_every=1``) and every N-th frame — and compares ``frames.csv`` row by row (same frame, same track):
agreement of the per-frame ``emotion``, of the track-smoothed ``smoothed_emotion``, and the largest
probability difference. Also prints the FPS of both runs (same process, alternating; ratios only).

    .venv/bin/python benchmarks/label_reuse.py                          # generated clips, random-init model
    .venv/bin/python benchmarks/label_reuse.py --checkpoint model.pt --clip interview.mp4 --every 2 3

Without ``--checkpoint`` the model is a random-init network whose BatchNorm statistics are re-estimated on
varied crops of the bundled portrait: a plain random-init network answers the same for every face (its
probabilities do not move, so agreement would be trivially 100 %), while this one reacts to every change of
crop, lighting and position, more than a trained model (which learnt to ignore them) would. For a
figure about real expressions pass a trained checkpoint and real clips.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _rows(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {(r["frame"], r["track"]): r for r in csv.DictReader(fh) if r["track"]}


def flicker(path: Path, column: str = "emotion") -> float:
    """Share of face-frames whose ``column`` differs from the same track's previous analysed frame: how often
    the labels change from one frame to the next when every face is classified on every frame. Carrying a
    label over for one frame disagrees with re-classifying at about this rate."""
    rows = sorted(_rows(path).values(), key=lambda r: (int(r["track"]), int(r["frame"])))
    pairs = [(a, b) for a, b in zip(rows, rows[1:], strict=False) if a["track"] == b["track"]]
    return sum(a[column] != b[column] for a, b in pairs) / max(1, len(pairs))


def compare(exact: Path, reused: Path) -> dict[str, float]:
    """Agreement of two frames.csv files on the rows (frame, track) both have."""
    a, b = _rows(exact), _rows(reused)
    keys = sorted(set(a) & set(b), key=lambda k: (int(k[0]), int(k[1])))
    p_cols = [c for c in next(iter(a.values())) if c.startswith("p_")] if a else []
    if not keys:
        return {"rows": 0}
    same = sum(a[k]["emotion"] == b[k]["emotion"] for k in keys)
    same_s = sum(a[k]["smoothed_emotion"] == b[k]["smoothed_emotion"] for k in keys)
    carried = sum(b[k]["label_frame"] != b[k]["frame"] for k in keys)
    dp = max(abs(float(a[k][c]) - float(b[k][c])) for k in keys for c in p_cols)
    return {"rows": len(keys), "carried": carried, "emotion_agree": same / len(keys),
            "smoothed_agree": same_s / len(keys), "max_prob_diff": dp}


def sensitive_model(path: Path, backbone: str, face) -> Path:
    """A random-init model whose BatchNorm statistics come from varied face crops (see the module docstring)."""
    import numpy as np
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = create_model(backbone)
    import cv2

    crops = []
    for _ in range(64):  # random scale, shift, brightness and flip of the portrait
        h, w = face.shape[:2]
        s = rng.uniform(0.7, 1.0)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        c = cv2.resize(face[y:y + ch, x:x + cw], (224, 224)).astype(np.float32) * rng.uniform(0.6, 1.3)
        crops.append(c[:, ::-1] if rng.random() < 0.5 else c)
    x = torch.from_numpy(np.clip(np.stack(crops), 0, 255) / 255.0).permute(0, 3, 1, 2).float()
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
    net.train()
    with torch.no_grad():
        for i in range(0, len(x), 16):
            net(x[i:i + 16])
    net.eval()
    save_model(path, net, ModelInfo(backbone, list(RAFDB_CLASSES), 224, list(IMAGENET_MEAN), list(IMAGENET_STD)))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="model file (default: a random-init MobileNetV2)")
    ap.add_argument("--clip", nargs="*", default=None, help="video files (default: generated 1- and 5-face clips)")
    ap.add_argument("--every", nargs="*", type=int, default=[2], help="N values to compare with 1 (default 2)")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--backbone", default="mobilenet_v2", help="without --checkpoint: the random-init network")
    args = ap.parse_args()

    from eacfer.data.imageio import load_image
    from eacfer.infer.jobs.video import run_video
    from eacfer.infer.predictor import Predictor

    tmp = Path(tempfile.mkdtemp(prefix="eacfer-label-reuse-"))
    face = load_image(ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg")[10:270, 110:350]
    clips = [Path(c) for c in args.clip] if args.clip else None
    if clips is None:
        from video_pipeline import make_multi_face_clip

        from eacfer.demo import make_moving_face_clip

        clips = [make_moving_face_clip(tmp / "one_face.mp4", face, frames=args.frames, size=(640, 360),
                                       face_height=220),
                 make_multi_face_clip(tmp / "five_faces.mp4", face, 5, frames=args.frames)]
    checkpoint = args.checkpoint or str(sensitive_model(tmp / "mobilenet_v2.pt", args.backbone, face))
    print(f"model {checkpoint}; load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    print("| clip | N | rows | carried | emotion agrees | smoothed agrees | max prob diff | FPS N=1 | FPS N |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    flick = []
    with Predictor.from_checkpoint(checkpoint) as predictor:
        for clip in clips:
            base = run_video(predictor, clip, tmp / f"{clip.stem}_1", progress=False, classify_every=1)
            flick.append((clip.name, flicker(tmp / f"{clip.stem}_1" / "frames.csv"),
                          flicker(tmp / f"{clip.stem}_1" / "frames.csv", "smoothed_emotion")))
            for n in args.every:
                s = run_video(predictor, clip, tmp / f"{clip.stem}_{n}", progress=False, classify_every=n)
                c = compare(tmp / f"{clip.stem}_1" / "frames.csv", tmp / f"{clip.stem}_{n}" / "frames.csv")
                if not c["rows"]:
                    print(f"| {clip.name} | {n} | 0 | – | – | – | – | {base['fps']} | {s['fps']} |")
                    continue
                print(f"| {clip.name} | {n} | {c['rows']} | {c['carried']} | {c['emotion_agree']:.2%} | "
                      f"{c['smoothed_agree']:.2%} | {c['max_prob_diff']:.3f} | {base['fps']} | {s['fps']} |")
    print("\nframe-to-frame label changes with every face classified on every frame (N=1):")
    for name, raw, smooth in flick:
        print(f"  {name}: emotion {raw:.2%}, smoothed_emotion {smooth:.2%}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
