"""The desktop app's live view: per-frame work of its model session, before and after the detection and label
changes of issue #11, side by side in one process.

The app analyses a camera or video frame in two stages on two inference threads (``ModelSession.detect``,
then ``ModelSession.finish`` in capture order; see eacfer/ui/window.py). This script feeds the frames of a
generated 640×360 clip through both stages on two threads joined by a one-frame queue, as the app does, for

* ``before``: BlazeFace on MediaPipe Tasks and every face classified on every frame (``--classify-every 1``),
* ``now``: BlazeFace on LiteRT and ``--classify-every auto`` (the app's defaults now),

alternating, and prints frames per second and the ratio. No window is drawn (drawing is the same in both).

    .venv/bin/python benchmarks/app_live_view.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_once(model: Path, frames: list, engine: str, classify_every: str) -> float:
    """Frames per second of the app's two-stage analysis over ``frames``."""
    import eacfer.infer.detect.litert_backend as lb
    from eacfer.ui.session import ModelSession
    from eacfer.ui.worker import FramePacket

    real = lb.litert_available
    if engine == "mediapipe":
        lb.litert_available = lambda: False  # resolve_engine("auto") → MediaPipe Tasks
    try:
        session = ModelSession.load(model, classify_every=classify_every)
    finally:
        lb.litert_available = real
    try:
        packets = [FramePacket(i, i, i / 25, rgb, 1, reset=i == 0) for i, rgb in enumerate(frames)]
        session.analyze(packets[0], want_cam=False)  # warm-up (sessions, caches)
        handoff: queue.Queue = queue.Queue(maxsize=1)

        def first_stage() -> None:
            for p in packets:
                handoff.put((p, session.detect(p)))
            handoff.put(None)

        t0 = time.perf_counter()
        th = threading.Thread(target=first_stage)
        th.start()
        n = 0
        while (item := handoff.get()) is not None:
            session.finish(item[0], item[1], want_cam=False)
            n += 1
        th.join()
        return n / (time.perf_counter() - t0)
    finally:
        session.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="mobilenet_v2,resnet50_msceleb")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import cv2
    from cpu_inference import _model
    from video_pipeline import make_multi_face_clip

    from eacfer.data.imageio import load_image
    from eacfer.demo import make_moving_face_clip
    from eacfer.infer.stream.sources import open_source

    tmp = Path(tempfile.mkdtemp(prefix="eacfer-app-live-"))
    face = load_image(ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg")[10:270, 110:350]
    clips = {"1 face": make_moving_face_clip(tmp / "one.mp4", face, frames=args.frames, size=(640, 360),
                                             face_height=220),
             "5 faces": make_multi_face_clip(tmp / "five.mp4", face, 5, frames=args.frames)}
    decoded = {}
    for name, path in clips.items():
        with open_source(path) as src:
            decoded[name] = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for _, _, f in src]
    versions = {"before": ("mediapipe", "1"), "now": ("litert", "auto")}
    print(f"load average at start {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    print("| backbone | clip | before (FPS) | now (FPS) | ratio |")
    print("|---|---|---:|---:|---:|")
    for backbone in args.backbones.split(","):
        model = _model(tmp / f"{backbone}.pt", backbone)
        for name in (["1 face", "5 faces"] if backbone == "mobilenet_v2" else ["1 face"]):
            fps: dict[str, list[float]] = {v: [] for v in versions}
            for rnd in range(args.rounds):
                for v in (list(versions) if rnd % 2 == 0 else list(versions)[::-1]):
                    fps[v].append(run_once(model, decoded[name], *versions[v]))
            b, n = statistics.median(fps["before"]), statistics.median(fps["now"])
            print(f"| {backbone} | {name} | {b:.1f} | {n:.1f} | {n / b:.2f}× |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
