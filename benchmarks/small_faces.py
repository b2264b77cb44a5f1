"""Small faces in large images: the photo detector with tiles (default) against the whole image only.

Run:  PYTHONPATH=src .venv/bin/python benchmarks/small_faces.py [--rounds 3]

Photos: two faces of ``px`` pixels (the bundled public-domain NASA portrait, ``eacfer.infer.detect.scenes``)
on a textured background of each size; faces found / true (false detections) and the median ms per photo,
``create_detector("mediapipe")`` (both BlazeFace models + tiles, ``small_face=48``) against the same with
``small_face=0`` (what ran before), the two alternating on every photo. Then large textures (no face): false
detections. Then video: the finder (``make_video_finder``) on a still 1920×1080 frame with one 80 px face,
frames until the face has a track, and on a 60-frame 1920×1080 clip (an 80 px face, a 72 px one entering at
frame 20): faces found and ms per frame, with and without the tile sweep; with ``--video`` also
``eacfer video`` end to end on that clip (looped to 240 frames), with and without. The load average is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from eacfer.infer.detect import create_detector
from eacfer.infer.detect.finder import make_video_finder
from eacfer.infer.detect.tiles import tile_grid

# the generated scenes are test data at the checkout root (testdata/), not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testdata.scenes import background, match_faces, place_face, texture_frame  # noqa: E402

SIZES = [(800, 600), (1280, 720), (1920, 1080), (4000, 3000)]
FACES = [40, 48, 64, 96, 128, 200]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="timed calls per photo and detector (median)")
    ap.add_argument("--video", action="store_true", help="also run eacfer video end to end on the HD clip")
    args = ap.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} logical CPUs, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    tiled, whole = create_detector("mediapipe"), create_detector("mediapipe", small_face=0)
    print("| image | tiles | face px | tiles: found (false) | ms | whole image: found (false) | ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    totals = {"t": [0, 0, 0], "w": [0, 0, 0]}
    for w, h in SIZES:
        for px in FACES:
            canvas = background(w, h, 7)
            truth = [place_face(canvas, px, w * 0.3, h * 0.4), place_face(canvas, px, w * 0.75, h * 0.6)]
            times: dict[str, list[float]] = {"t": [], "w": []}
            found = {}
            for r in range(args.rounds):
                order = (("t", tiled), ("w", whole)) if r % 2 == 0 else (("w", whole), ("t", tiled))
                for key, det in order:
                    t0 = time.perf_counter()
                    dets = det.detect(canvas)
                    times[key].append((time.perf_counter() - t0) * 1000)
                    found[key] = match_faces([d.box for d in dets], truth, w, h)
            for key in ("t", "w"):
                totals[key][0] += found[key][0]
                totals[key][1] += found[key][1]
                totals[key][2] += len(truth)
            print(f"| {w}×{h} | {len(tile_grid(w, h, 48))} | {px} | {found['t'][0]}/2 ({found['t'][1]}) | "
                  f"{statistics.median(times['t']):.0f} | {found['w'][0]}/2 ({found['w'][1]}) | "
                  f"{statistics.median(times['w']):.0f} |")
    for key, label in (("t", "tiles"), ("w", "whole image")):
        print(f"# {label}: {totals[key][0]}/{totals[key][2]} faces found, {totals[key][1]} false detections")
    false = {"t": 0, "w": 0}
    for kind in ("noise", "dots", "checker", "stripes"):
        for seed in range(3):
            for w, h in ((1920, 1080), (1600, 1200), (4000, 3000)):
                img = texture_frame(w, h, kind, seed=seed)
                false["t"] += len(tiled.detect(img))
                false["w"] += len(whole.detect(img))
    print(f"# textures (4 kinds × 3 seeds × 3 sizes): false detections with tiles {false['t']}, "
          f"whole image {false['w']}")
    tiled.close()
    whole.close()
    canvas = background(1920, 1080, 3)
    place_face(canvas, 80, 1500, 800)
    for label, small in (("sweep (default)", 64.0), ("no sweep", 0.0)):
        with make_video_finder(small_face=small) as finder:
            first = next((i for i in range(60) if finder.detect(canvas)), None)
        print(f"# video finder, 1920×1080, one 80 px face, {label}: track from frame "
              f"{'never (60 frames)' if first is None else first}")
    # an HD clip: an 80 px face drifting on the left all along, a 72 px face entering on the right at frame 20
    frames, truth = [], []
    for i in range(60):
        canvas = background(1920, 1080, 5)
        boxes = [place_face(canvas, 80, 500 + 3 * i, 400)]
        if i >= 20:
            boxes.append(place_face(canvas, 72, 1500 - 2 * i, 700))
        frames.append(canvas)
        truth.append(boxes)
    print("| finder on a 1920×1080 clip (60 frames) | faces found / true | median ms per frame | mean ms |")
    print("|---|---:|---:|---:|")
    for label, small in (("sweep (default)", 64.0), ("no sweep", 0.0)):
        found = total = 0
        ms = []
        with make_video_finder(small_face=small) as finder:
            for img, boxes in zip(frames, truth, strict=True):
                t0 = time.perf_counter()
                dets = finder.detect(img)
                ms.append((time.perf_counter() - t0) * 1000)
                found += match_faces([d.box for d in dets], boxes, 1920, 1080)[0]
                total += len(boxes)
        print(f"| {label} | {found}/{total} | {statistics.median(ms):.1f} | {statistics.fmean(ms):.1f} |")
    if args.video:
        video_end_to_end(frames, args.rounds)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


def video_end_to_end(frames: list, rounds: int) -> None:
    """``eacfer video`` (MobileNetV2, random weights, writing annotated.mp4) on the HD clip looped to 240
    frames, with the sweep (default) and with ``--small-face 0``, alternating; FPS and faces per frame."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import cv2

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cpu_inference import _model

    tmp = Path(tempfile.mkdtemp(prefix="eacfer-small-faces-"))
    clip = tmp / "hd.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25, (1920, 1080))
    for i in range(240):
        writer.write(cv2.cvtColor(frames[i % len(frames)], cv2.COLOR_RGB2BGR))
    writer.release()
    model = _model(tmp / "mnv2.pt", "mobilenet_v2")
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "EACFER_CACHE_DIR": str(tmp / "cache"),
           "PYTHONWARNINGS": "ignore"}
    runs = {"sweep (default)": [], "--small-face 0": ["--small-face", "0"]}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for r in range(rounds + 1):  # round 0 warms up (ONNX export) and is not counted
        for label in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            out = tmp / f"out_{r}_{len(runs[label])}"
            cmd = [sys.executable, "-m", "eacfer", "-q", "video", str(clip), "--checkpoint", str(model),
                   "--out", str(out), *runs[label]]
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
            if r:
                results[label].append((s["fps"], s["faces"] / max(1, s["frames"])))
    print("| eacfer video, 1920×1080, 240 frames | FPS (median) | faces per frame (true: 1.67) |")
    print("|---|---:|---:|")
    for label, rs in results.items():
        print(f"| {label} | {statistics.median(f for f, _ in rs):.1f} | {statistics.fmean(n for _, n in rs):.2f} |")


if __name__ == "__main__":
    main()
