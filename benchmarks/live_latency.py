"""Live-camera latency of ``eacfer video``: a simulated 25 fps camera (a clip paced to real time), the threaded
pipeline, each backbone with ``--classify-every 1`` and ``auto``; capture-to-labels latency percentiles and
dropped frames from summary.json, and how many frames old the labels shown on each face are (frames.csv's
``label_frame``; live sources classify known faces in the background, so labels can be older than N-1).

    .venv/bin/python benchmarks/live_latency.py [--seconds 10]

Random-init models (latency does not depend on the weights); 640×360 one-face clip from the bundled portrait.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="mobilenet_v2,resnet50_msceleb")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()

    from cpu_inference import _model
    from video_pipeline import PacedCapture

    from eacfer.data.imageio import load_image
    from eacfer.demo import make_moving_face_clip
    from eacfer.infer.jobs.video import run_video
    from eacfer.infer.predictor import Predictor
    from eacfer.infer.stream.sources import open_source

    tmp = Path(tempfile.mkdtemp(prefix="eacfer-live-"))
    os.environ.setdefault("EACFER_CACHE_DIR", str(tmp / "cache"))
    face = load_image(ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg")[10:270, 110:350]
    frames = int(25 * args.seconds)
    clip = make_moving_face_clip(tmp / "one.mp4", face, frames=frames, size=(640, 360), face_height=220)
    print(f"load average at start {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; {frames} frames at 25 fps")
    print("| backbone | classify every | frames read | dropped | latency p50 (ms) | p90 | p99 | label age p50 / max "
          "(frames) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for backbone in args.backbones.split(","):
        with Predictor.from_checkpoint(_model(tmp / f"{backbone}.pt", backbone)) as p:
            run_video(p, clip, tmp / "warm", progress=False, max_frames=10)
            for every in ("1", "auto"):
                src = open_source(0, capture_factory=lambda t, c=str(clip): PacedCapture(c, 25.0), max_failures=1)
                s = run_video(p, src, tmp / f"{backbone}_{every}", progress=False, classify_every=every)
                lat = s["latency_ms"]
                age = label_ages(tmp / f"{backbone}_{every}" / "frames.csv")
                print(f"| {backbone} | {every} ({s['labels']['classify_every']}) | {s['frames_read']} | "
                      f"{s['dropped_frames']} | {lat['p50']} | {lat['p90']} | {lat['p99']} | "
                      f"{statistics.median(age) if age else '-'} / {max(age) if age else '-'} |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


def label_ages(csv_path: Path) -> list[int]:
    """Frames between each face's frame and the frame its labels were computed on (frames.csv)."""
    import csv

    with open(csv_path, newline="", encoding="utf-8") as fh:
        return [int(r["frame"]) - int(r["label_frame"]) for r in csv.DictReader(fh) if r.get("label_frame")]


if __name__ == "__main__":
    main()
