"""Small faces in large images: the photo detector with tiles (default) against the whole image only.

Run:  PYTHONPATH=src .venv/bin/python benchmarks/small_faces.py [--rounds 3]

Photos: two faces of ``px`` pixels (the bundled public-domain NASA portrait, ``eacfer.infer.detect.scenes``)
on a textured background of each size; faces found / true (false detections) and the median ms per photo,
``create_detector("mediapipe")`` (both BlazeFace models + tiles, ``small_face=48``) against the same with
``small_face=0`` (what ran before), the two alternating on every photo. Then large textures (no face): false
detections. Then video: the finder (``make_video_finder``) on a still 1920×1080 frame with one 80 px face,
frames until the face has a track, with and without the tile sweep. The machine's load average is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from eacfer.infer.detect import create_detector
from eacfer.infer.detect.finder import make_video_finder
from eacfer.infer.detect.scenes import background, match_faces, place_face, texture_frame
from eacfer.infer.detect.tiles import tile_grid

SIZES = [(800, 600), (1280, 720), (1920, 1080), (4000, 3000)]
FACES = [40, 48, 64, 96, 128, 200]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="timed calls per photo and detector (median)")
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
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
