"""``eacfer video`` against a popular CPU peer, the ``fer`` package (Haar cascade + a 64×64 mini-Xception on
TensorFlow), on the same clip, each writing its annotated video, alternating runs.

The peer runs in its own virtual environment (it needs TensorFlow, ~7.6 GB; never a dependency of eacfer):

    python3 -m venv /tmp/fervenv && /tmp/fervenv/bin/pip install fer==25.10.3 "setuptools<70"
    .venv/bin/python benchmarks/vs_fer.py --fer-python /tmp/fervenv/bin/python --rounds 3

The peer's own video path is timed: ``fer.classes.Video(clip).analyze(fer.fer.FER(), save_video=True,
annotate_frames=True, save_frames=False, zip_images=False)``, after the detector is built (eacfer's FPS, from
summary.json, likewise excludes loading the model). Clips: a generated 640×360 one-face clip (``--clip`` for
your own). eacfer runs with random-init weights (speed does not depend on them) and its defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FER_CHILD = r"""
import json, sys, time, os
import cv2
from fer.fer import FER
from fer.classes import Video
clip, out = sys.argv[1], sys.argv[2]
os.chdir(out)
detector = FER()
n = int(cv2.VideoCapture(clip).get(cv2.CAP_PROP_FRAME_COUNT))
video = Video(clip, outdir=out)
t0 = time.perf_counter()
video.analyze(detector, display=False, save_frames=False, save_video=True, annotate_frames=True, zip_images=False)
wall = time.perf_counter() - t0
print("RESULT " + json.dumps({"frames": n, "wall_s": wall, "fps": n / wall}))
"""


def run_fer(python: str, clip: Path, out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([python, "-c", FER_CHILD, str(clip), str(out)], capture_output=True, text=True, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        raise SystemExit(f"fer run failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return float(json.loads(lines[-1][7:])["fps"])


def run_eacfer(clip: Path, model: Path, out: Path, cache: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "EACFER_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "eacfer", "-q", "video", str(clip), "--checkpoint", str(model), "--out", str(out),
           "--overwrite"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"eacfer run failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return float(json.loads((out / "summary.json").read_text(encoding="utf-8"))["fps"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fer-python", required=True, help="python of a virtual environment with fer installed")
    ap.add_argument("--clip", default=None, help="video file (default: a generated 640×360 one-face clip)")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backbones", default="mobilenet_v2,resnet50_msceleb")
    args = ap.parse_args()

    from cpu_inference import _model

    from eacfer.data.imageio import load_image
    from eacfer.demo import make_moving_face_clip

    tmp = Path(tempfile.mkdtemp(prefix="eacfer-vs-fer-"))
    if args.clip:
        clip = Path(args.clip).resolve()
    else:
        face = load_image(ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg")[10:270, 110:350]
        clip = make_moving_face_clip(tmp / "one.mp4", face, frames=args.frames, size=(640, 360), face_height=220)
    models = {b: _model(tmp / f"{b}.pt", b) for b in args.backbones.split(",")}
    versions = ["fer", *[f"eacfer {b}" for b in models]]
    print(f"clip {clip}; load average at start {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs", flush=True)
    for b, m in models.items():  # warm-up: ONNX export into the cache, not timed
        run_eacfer(clip, m, tmp / f"warm_{b}", tmp / "cache")
    fps: dict[str, list[float]] = {v: [] for v in versions}
    for rnd in range(args.rounds):
        for v in (versions if rnd % 2 == 0 else versions[::-1]):
            if v == "fer":
                f = run_fer(args.fer_python, clip, tmp / f"fer_{rnd}")
            else:
                b = v.split()[1]
                f = run_eacfer(clip, models[b], tmp / f"{b}_{rnd}", tmp / "cache")
            fps[v].append(f)
            print(f"  round {rnd} {v:30s} {f:6.1f} FPS, load {os.getloadavg()[0]:.2f}", flush=True)
    base = statistics.median(fps["fer"])
    print("\n| tool | FPS (median) | vs fer |\n|---|---:|---:|")
    for v in versions:
        m = statistics.median(fps[v])
        print(f"| {v} | {m:.1f} | {m / base:.2f}× |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
