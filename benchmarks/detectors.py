"""Median per-frame latency of each face detector on a 640×360 frame with one real face.

Run:  .venv/bin/python benchmarks/detectors.py [--frames 200]
The BlazeFace detectors are measured on both engines (``@litert``, the default, and ``@mediapipe``, MediaPipe
Tasks), one after the other in the same process.
The frame is the bundled NASA astronaut portrait (public domain) scaled into a 640×360 canvas, the
size the issue's numbers refer to. Detector construction is not timed; 10 warm-up calls are discarded.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from importlib import resources

import numpy as np
from PIL import Image

from eacfer.infer.detect import create_detector, list_detectors


def make_frame() -> np.ndarray:
    """640×360 RGB frame, webcam-like: grey background, the astronaut's head and shoulders (face ≈ 130 px)."""
    with resources.files("eacfer").joinpath("assets", "astronaut.jpg").open("rb") as fh:
        head = Image.open(fh).convert("RGB").crop((110, 10, 340, 260)).resize((276, 300))
    frame = np.full((360, 640, 3), 110, np.uint8)
    frame[30:330, 182:458] = np.asarray(head)
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    frame = make_frame()
    import cv2
    import mediapipe

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, python {platform.python_version()}, "
        f"mediapipe {mediapipe.__version__}, opencv {cv2.__version__}"
    )
    print(f"{'detector':<26} {'median ms':>9} {'p90 ms':>7} {'faces':>5} {'score':>6}")
    runs = []
    for name in list_detectors():
        if name in ("mediapipe", "none"):  # mediapipe = mediapipe-both (mode auto); none detects nothing
            continue
        if name.startswith("mediapipe"):
            runs += [(f"{name}@litert", name, {"engine": "litert"}), (f"{name}@mediapipe", name, {"engine": "mediapipe"})]
        else:
            runs.append((name, name, {}))
    for label, name, kw in runs:
        try:
            det = create_detector(name, **kw)
        except ValueError as exc:  # an optional detector that is not installed (retinaface)
            print(f"{label:<26} skipped: {exc}")
            continue
        try:
            for _ in range(10):
                faces = det.detect(frame)
            times = []
            for _ in range(args.frames):
                t0 = time.perf_counter()
                faces = det.detect(frame)
                times.append((time.perf_counter() - t0) * 1e3)
        finally:
            det.close()
        times.sort()
        best = f"{faces[0].score:.2f}" if faces else "-"
        print(
            f"{label:<26} {statistics.median(times):9.2f} {times[int(0.9 * len(times))]:7.2f} {len(faces):5d} {best:>6}"
        )


if __name__ == "__main__":
    main()
