"""The video-pipeline part of ``benchmarks/cpu_inference.py --only pipeline`` (issue #11): sequential vs
threaded ``eacfer video`` side by side, alternating, plus encoder cost. Run it through cpu_inference.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def make_multi_face_clip(out: Path, face_rgb, n_faces: int = 5, frames: int = 60, size=(640, 360),
                         fps: float = 25.0) -> Path:
    """``n_faces`` copies of a portrait (3 + 2 on two rows), 120–160 px tall (faces ≈ 55–75 px), each drifting on its own path."""
    import cv2
    import numpy as np

    from eacfer.infer.jobs.writers import VideoWriter

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([(xx * 200 // w), (yy * 200 // h), np.full_like(xx, 90)], -1).astype(np.uint8)
    face = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2BGR)
    cols = (n_faces + 1) // 2
    cells = [(i % cols, i // cols) for i in range(n_faces)]
    cw, ch = w // cols, h // 2
    tiles = []
    for i in range(n_faces):
        th = min(ch - 10, 120 + 40 * i // max(1, n_faces - 1))
        t = cv2.resize(face, (int(face.shape[1] * th / face.shape[0]), th), interpolation=cv2.INTER_AREA)
        tiles.append(t[:, ::-1] if i % 2 else t)
    with VideoWriter(out, fps, size, codec="mp4v") as wr:
        for k in range(frames):
            frame = bg.copy()
            for i, t in enumerate(tiles):
                fh, fw = t.shape[:2]
                cx, cy = cells[i]
                phase = 2 * np.pi * (k / max(1, frames) + i / n_faces)
                x = int(cx * cw + (cw - fw) / 2 + 0.4 * (cw - fw) / 2 * np.sin(phase))
                y = int(cy * ch + (ch - fh) / 2 + 0.4 * (ch - fh) / 2 * np.cos(phase))
                frame[y:y + fh, x:x + fw] = t
            wr.write(frame)
    return out


#: the pipelines compared: before (sequential, full-range detection on every frame), the new default (threaded,
#: the tracking face finder), threaded with full-range detection on every frame (what the threads alone give),
#: and the default with onnxruntime on one thread (each stage on its own core instead of ORT's 2-thread sections)
VARIANTS = ("sequential", "threaded", "threaded+every", "threaded/1t")


class PacedCapture:
    """A cv2.VideoCapture over a file that delivers frames no faster than ``fps`` (a simulated camera)."""

    def __init__(self, path: str, fps: float):
        import cv2

        self.cap, self.period, self.due = cv2.VideoCapture(path), 1.0 / fps, None

    def isOpened(self):  # noqa: N802 - cv2 API
        return self.cap.isOpened()

    def read(self):
        now = time.perf_counter()
        self.due = now if self.due is None else self.due + self.period
        if self.due > now:
            time.sleep(self.due - now)
        return self.cap.read()

    def get(self, prop):
        return self.cap.get(prop)

    def set(self, prop, value):
        return True

    def release(self):
        self.cap.release()


def pipeline_child(args: argparse.Namespace) -> None:
    """Sequential vs threaded, alternating, in this process (one model load); prints RESULT lines."""
    from eacfer.infer.jobs.video import run_video
    from eacfer.infer.predictor import Predictor
    from eacfer.infer.stream.sources import open_source

    os.environ.setdefault("EACFER_CACHE_DIR", str(Path(args.out) / "cache"))
    keys = ("fps", "frames", "faces", "frames_with_faces", "stage_ms", "stage_utilisation", "latency_ms",
            "dropped_frames", "video_codec")
    with Predictor.from_checkpoint(args.model, device="cpu", threads=args.threads) as p, \
            Predictor.from_checkpoint(args.model, device="cpu", threads=1) as p1:
        for clip in args.clip.split(","):
            for q in (p, p1):
                run_video(q, clip, Path(args.out) / "warmup", progress=False, max_frames=10)  # start-up
            for rnd in range(args.rounds):
                order = VARIANTS if rnd % 2 == 0 else VARIANTS[::-1]
                for pipe in order:
                    q = p1 if pipe.endswith("/1t") else p
                    q.detector_mode = "full" if pipe == "sequential" or "+every" in pipe else "auto"
                    s = run_video(q, clip, Path(args.out) / f"run{rnd}", progress=False,
                                  pipeline=pipe.split("+")[0].split("/")[0])
                    print("RESULT " + json.dumps({"clip": Path(clip).stem, "pipeline": pipe, "round": rnd,
                                                  "load_1m": round(os.getloadavg()[0], 2),
                                                  **{k: s[k] for k in keys}}), flush=True)
        p.detector_mode = "auto"
        if args.live:
            clip = args.clip.split(",")[0]
            for pipe in ("sequential", "threaded"):
                src = open_source(0, capture_factory=lambda t, c=clip: PacedCapture(c, 25.0), max_failures=1)
                s = run_video(p, src, Path(args.out) / f"live_{pipe}", progress=False, pipeline=pipe)
                print("RESULT " + json.dumps({"clip": "live:" + Path(clip).stem, "pipeline": pipe, "round": 0,
                                              "load_1m": round(os.getloadavg()[0], 2),
                                              "frames_read": s["frames_read"], **{k: s[k] for k in keys}}),
                      flush=True)


def encoder_cost(clip: Path) -> list[dict]:
    """ms per frame and PSNR (dB, against the decoded source frames) of each available MP4 codec."""
    import cv2
    import numpy as np

    from eacfer.infer.jobs.writers import VideoWriter, pyav_available

    cap = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    rows = []
    for codec in ("mp4v", "h264") if pyav_available() else ("mp4v",):
        out = clip.with_name(f"enc_{codec}.mp4")
        t0 = time.perf_counter()
        with VideoWriter(out, 25, (frames[0].shape[1], frames[0].shape[0]), codec=codec) as w:
            for f in frames:
                w.write(f)
        ms = (time.perf_counter() - t0) * 1000 / len(frames)
        cap = cv2.VideoCapture(str(out))
        mse = []
        for f in frames:
            ok, g = cap.read()
            if not ok:
                break
            mse.append(float(np.mean((f.astype(np.float32) - g.astype(np.float32)) ** 2)))
        cap.release()
        psnr = 10 * np.log10(255.0 ** 2 / max(1e-9, float(np.mean(mse))))
        rows.append({"codec": w.description, "ms_per_frame": round(ms, 2), "psnr_db": round(float(psnr), 2),
                     "kb_per_frame": round(out.stat().st_size / 1024 / len(frames), 1)})
        print(f"  encoder {w.description:30s} {ms:6.2f} ms/frame  PSNR {psnr:5.2f} dB  "
              f"{rows[-1]['kb_per_frame']:.1f} KB/frame", flush=True)
    return rows


def pipeline_compare(tmp: Path, threads: int, frames: int, rounds: int, script: Path,
                     make_model: Callable[[Path, str], Path], backbones: Sequence[str],
                     root: Path) -> tuple[list[dict], list[dict]]:
    """Run one child of ``script --pipeline-child`` per backbone; per-run rows and a per-variant summary."""
    import statistics

    from eacfer.data.imageio import load_image
    from eacfer.demo import make_moving_face_clip
    from eacfer.infer.runtime.backends import onnx_for_checkpoint

    face = load_image(root / "src" / "eacfer" / "assets" / "astronaut.jpg")[10:270, 110:350]
    one = make_moving_face_clip(tmp / "one_face.mp4", face, frames=frames, size=(640, 360), face_height=220)
    five = make_multi_face_clip(tmp / "five_faces.mp4", face, 5, frames=frames)
    os.environ["EACFER_CACHE_DIR"] = str(tmp / "cache")
    rows: list[dict] = []
    for backbone in backbones:
        pt = tmp / f"{backbone}.pt"
        if not pt.exists():
            make_model(pt, backbone)
        onnx_for_checkpoint(pt)  # exported once, outside the timed runs
        # five faces with the ResNet-50 are no target (and slow on 2 cores): MobileNetV2 only
        clips = f"{one},{five}" if backbone == "mobilenet_v2" else str(one)
        cmd = [sys.executable, str(script), "--pipeline-child", "--model", str(pt), "--clip", clips,
               "--threads", str(threads), "--rounds", str(rounds), "--out", str(tmp / f"pipe_{backbone}")]
        if backbone == "mobilenet_v2":
            cmd.append("--live")
        env = {**os.environ, "EACFER_CACHE_DIR": str(tmp / "cache")}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        for line in out.splitlines():
            if line.startswith("RESULT "):
                r = {"backbone": backbone, **json.loads(line[7:])}
                rows.append(r)
                lat = r["latency_ms"]
                print(f"  {backbone:17s} {r['clip']:18s} {r['pipeline']:10s} round {r['round']}: {r['fps']:6.1f} FPS, "
                      f"faces/frame {r['faces'] / max(1, r['frames']):.2f}, latency p50 {lat.get('p50')} ms, "
                      f"dropped {r['dropped_frames']}, load {r['load_1m']}", flush=True)
    summary = []
    for backbone in backbones:
        for clip in ("one_face", "five_faces", "live:one_face"):
            sel = {p: [r for r in rows if r["backbone"] == backbone and r["clip"] == clip and r["pipeline"] == p]
                   for p in VARIANTS}
            if not sel["sequential"]:
                continue
            base = statistics.median(r["fps"] for r in sel["sequential"])
            for pipe, v in sel.items():
                if not v:
                    continue
                fps = statistics.median(r["fps"] for r in v)
                summary.append({"backbone": backbone, "clip": clip, "pipeline": pipe, "fps": fps,
                                "ratio": round(fps / base, 2),
                                "faces_per_frame": round(sum(r["faces"] for r in v) / max(1, sum(r["frames"] for r in v)), 2),
                                "latency_p50": v[-1]["latency_ms"].get("p50"), "dropped": v[-1]["dropped_frames"],
                                "stage_ms": v[-1]["stage_ms"], "utilisation": v[-1]["stage_utilisation"]})
    return rows, summary


def pipeline_markdown(info: dict, summary: list[dict], enc: list[dict], args: argparse.Namespace) -> str:
    out = ["### Video pipeline: sequential (before) vs threaded (default), same run, alternating", "",
           f"`python benchmarks/cpu_inference.py --only pipeline --frames {args.frames} --rounds {args.rounds}`; "
           f"{info['cpu']}, {info['cores_available']} cores; 1-minute load average at the start "
           f"{info['load_avg_1m']}. Random-weight models exported to ONNX, 224×224 input, MediaPipe full-range "
           "detection on every frame for files (short-range for the live camera), annotated.mp4 written. "
           "FPS: median over the rounds; latency: frame read → labels ready.", "",
           "| backbone | clip | pipeline | FPS | × sequential | faces / frame | latency p50 (ms) | dropped |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in summary:
        out.append(f"| {r['backbone']} | {r['clip']} | {r['pipeline']} | {r['fps']:.1f} | {r['ratio']:.2f}× | "
                   f"{r['faces_per_frame']} | {r['latency_p50']} | {r['dropped']} |")
    out += ["", "Per-stage ms per frame (work time measured inside each stage; in the threaded runs it includes "
            "contention for the 2 cores) and the busiest stage's share of the wall time:", "",
            "| backbone | clip | pipeline | decode | detect | align | classify | draw | write | busiest stage |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in summary:
        st, ut = r["stage_ms"], r["utilisation"]
        top = max(ut, key=ut.get) if ut else "?"
        out.append(f"| {r['backbone']} | {r['clip']} | {r['pipeline']} | " + " | ".join(
            f"{st.get(k, 0):.1f}" for k in ("decode", "detect", "align", "classify", "draw", "write"))
            + f" | {top} ({ut.get(top, 0):.0%}) |")
    if enc:
        out += ["", "| encoder | ms / frame | PSNR vs source (dB) | KB / frame |", "|---|---:|---:|---:|"]
        out += [f"| {e['codec']} | {e['ms_per_frame']:.2f} | {e['psnr_db']:.2f} | {e['kb_per_frame']:.1f} |"
                for e in enc]
    out.append("")
    return "\n".join(out)
