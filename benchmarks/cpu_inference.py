"""CPU inference benchmark: per-face latency (torch vs onnxruntime), end-to-end video FPS / memory, and the
threaded video pipeline against the sequential one.

    python benchmarks/cpu_inference.py                 # print the tables
    python benchmarks/cpu_inference.py --write         # also replace the "Inference (CPU)" section of RESULTS.md
    python benchmarks/cpu_inference.py --quick         # smoke run (few iterations, short clips)
    python benchmarks/cpu_inference.py --only pipeline # old (sequential) vs new (threaded) pipeline only

``--only pipeline`` (issue #11), one child process per backbone (MobileNetV2, the paper's ResNet-50; random
weights exported to ONNX as ``eacfer video`` does): on a 640×360 one-face clip and a composed 5-face clip
(the bundled public-domain astronaut, moving and scaled), ``run_video`` writing annotated.mp4 with the
sequential pipeline, the threaded one, and the threaded one with full-range detection on every frame,
**alternately** (order reversed every round, after a warm-up), FPS per run, faces found per frame, the
median ratios to sequential, per-stage ms, latency percentiles; then a simulated live
camera (the clip paced at its 25 fps) for capture-to-result latency and dropped frames; then the encoder
(OpenCV MPEG-4 vs H.264 through PyAV): ms per frame and PSNR against the source frames.

What is measured (random weights: speed does not depend on them):

* per-face classifier latency at 224×224 for MobileNetV2 and the Caffe-style ResNet-50, batch 1 and 8, with
  ``--threads`` threads (default 2): eager torch (``inference_mode``) vs onnxruntime (the predictor's session
  options); median of N runs after warm-up, in ms per batch and per face;
* end-to-end ``eacfer video`` speed on a generated 640×360 clip of the bundled astronaut portrait gliding
  across the frame (one face), writing ``annotated.mp4``, ``frames.csv`` and ``summary.json``: FPS = frames /
  wall time of ``run_video`` (decode → detect → align → classify → track → draw → encode), per-stage ms;
* peak RSS (``VmHWM``) of a fresh process running the clip at 1× and 10× its length — flat memory means
  the two agree.

Each end-to-end run is a separate process pinned to ``--threads`` cores when the OS allows, so model
start-up and memory are not shared between runs. The machine's load average is recorded because other
processes on a shared machine slow every number down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Inference (CPU)"
BACKBONES = ("mobilenet_v2", "resnet50_msceleb")


def _model(path: Path, backbone: str, size: int = 224) -> Path:
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo

    torch.manual_seed(0)
    save_model(path, create_model(backbone), ModelInfo(backbone, list(RAFDB_CLASSES), size, list(IMAGENET_MEAN),
                                                       list(IMAGENET_STD)))
    return path


def machine_info() -> dict:
    import cv2
    import numpy
    import onnxruntime
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        mp = version("mediapipe")
    except Exception:
        mp = "?"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores_available": cores, "os": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__,
            "mediapipe": mp, "numpy": numpy.__version__, "load_avg_1m": round(os.getloadavg()[0], 2)}


def _median_ms(fn, warmup: int, runs: int) -> float:
    import statistics

    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def latency(tmp: Path, threads: int, runs: int) -> list[dict]:
    import numpy as np
    import torch

    from eacfer.checkpoint import load_model
    from eacfer.infer.runtime.backends import OnnxClassifier, onnx_for_checkpoint
    from eacfer.infer.runtime.torch_backend import TorchClassifier

    torch.set_num_threads(threads)
    rows = []
    for backbone in BACKBONES:
        pt = _model(tmp / f"{backbone}.pt", backbone)
        net, info = load_model(pt)
        clfs = {"torch": TorchClassifier(net, info, "cpu"),
                "onnxruntime": OnnxClassifier(onnx_for_checkpoint(pt, use_cache=False), str(pt), threads=threads)}
        for batch in (1, 8):
            crops = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
            for name, clf in clfs.items():
                n = max(3, runs // batch) if name == "torch" else max(5, runs // max(1, batch // 2))
                ms = _median_ms(lambda c=clf, x=crops: c.classify(x), warmup=3, runs=n)
                rows.append({"backbone": backbone, "backend": name, "batch": batch, "ms_per_batch": round(ms, 2),
                             "ms_per_face": round(ms / batch, 2), "runs": n})
                print(f"  {backbone:17s} {name:12s} batch {batch}: {ms:8.2f} ms/batch {ms / batch:7.2f} ms/face",
                      flush=True)
    return rows


def _child(args: argparse.Namespace) -> None:
    """One end-to-end run in this (fresh) process; prints a JSON line."""
    from eacfer.infer.jobs.video import run_video
    from eacfer.infer.predictor import Predictor

    os.environ.setdefault("EACFER_CACHE_DIR", str(Path(args.out) / "cache"))
    t0 = time.perf_counter()
    with Predictor.from_checkpoint(args.model, device="cpu", backend=args.backend, threads=args.threads,
                                   detector_mode=args.detector_mode) as p:
        load_s = time.perf_counter() - t0
        start_rss = _status_mb("VmRSS")
        reset = _reset_peak_rss()  # so the peak below is the video's, not the model loading's
        cpu0 = _cpu_s()
        s = run_video(p, args.clip, Path(args.out) / "video", progress=False, write_video=not args.no_video)
        cpu_ms = (_cpu_s() - cpu0) * 1000 / max(1, s["frames"])
        peak = _status_mb("VmHWM")
    print("RESULT " + json.dumps({"fps": s["fps"], "frames": s["frames"], "frames_with_faces": s["frames_with_faces"],
                                  "stage_ms": s["stage_ms"], "start_rss_mb": round(start_rss, 1),
                                  "peak_rss_mb": round(peak, 1), "peak_is_video_only": reset,
                                  "cpu_ms_per_frame": round(cpu_ms, 1),
                                  "load_s": round(load_s, 2), "backend": s["backend"]}))


def _cpu_s() -> float:
    """CPU time (user + system, all threads) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MB (VmRSS now, VmHWM = peak). Not ru_maxrss: Linux carries
    ru_maxrss over from the parent across fork+exec, so a child of a big parent would report its peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def end_to_end(tmp: Path, threads: int, frames: int, long_factor: int, backends: list[str]) -> list[dict]:
    from eacfer.data.imageio import load_image
    from eacfer.demo import make_moving_face_clip

    face = load_image(ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg")[10:270, 110:350]
    clips = {1: make_moving_face_clip(tmp / "clip1.mp4", face, frames=frames, size=(640, 360), face_height=220)}
    if long_factor > 1:
        clips[long_factor] = make_moving_face_clip(tmp / "clipN.mp4", face, frames=frames * long_factor,
                                                   size=(640, 360), face_height=220)
    cores = sorted(os.sched_getaffinity(0))[:threads] if hasattr(os, "sched_getaffinity") else []
    # export every model to ONNX once, here, so that no timed child pays for (or peaks on) the export
    from eacfer.infer.runtime.backends import onnx_for_checkpoint

    os.environ["EACFER_CACHE_DIR"] = str(tmp / "cache")
    for backbone in BACKBONES:
        pt = tmp / f"{backbone}.pt"
        if not pt.exists():
            _model(pt, backbone)
        onnx_for_checkpoint(pt)
    rows = []
    for backbone in BACKBONES:
        pt = tmp / f"{backbone}.pt"
        if not pt.exists():
            _model(pt, backbone)
        runs = [(backend, factor, "auto") for backend in backends for factor in clips]
        runs.append(("onnxruntime", 1, "short"))  # the faster short-range detector, for comparison
        for backend, factor, mode in runs:
            if factor > 1 and (backbone != "mobilenet_v2" or backend != "onnxruntime"):
                continue  # memory flatness is a pipeline property: one long run is enough
            if mode == "short" and backbone != "mobilenet_v2":
                continue
            clip = clips[factor]
            cmd = [sys.executable, __file__, "--child", "--model", str(pt), "--clip", str(clip), "--backend",
                   backend, "--threads", str(threads), "--detector-mode", mode,
                   "--out", str(tmp / f"run_{backbone}_{backend}_{factor}_{mode}")]
            env = {**os.environ, "EACFER_CACHE_DIR": str(tmp / "cache"), "OMP_NUM_THREADS": str(threads)}
            pre = ["taskset", "-c", ",".join(map(str, cores))] if cores and _has("taskset") else []
            out = subprocess.run(pre + cmd, capture_output=True, text=True, env=env, check=True).stdout
            r = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
            r.update({"backbone": backbone, "clip_factor": factor, "detector": mode})
            rows.append(r)
            print(f"  {backbone:17s} {backend:12s} {mode:5s} {r['frames']:5d} frames: {r['fps']:6.1f} FPS, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB, stages {r['stage_ms']}", flush=True)
    return rows


def _has(tool: str) -> bool:
    from shutil import which

    return which(tool) is not None


def to_markdown(info: dict, lat: list[dict], e2e: list[dict], args: argparse.Namespace) -> str:
    out = [SECTION, "",
           f"Measured with `python benchmarks/cpu_inference.py{' --quick' if args.quick else ''}` on "
           f"{info['cpu']} ({info['cores_available']} cores available, {args.threads} threads used), "
           f"torch {info['torch']}, onnxruntime {info['onnxruntime']}, OpenCV {info['opencv']}, "
           f"MediaPipe {info['mediapipe']}, Python {info['python']}, {info['os']}. "
           f"1-minute load average at the start: {info['load_avg_1m']} (other jobs on a shared machine "
           "slow every number down).", "",
           "### Per-face classifier latency (224×224, random weights)", "",
           "| backbone | backend | batch | ms / batch | ms / face |", "|---|---|---:|---:|---:|"]
    for r in lat:
        out.append(f"| {r['backbone']} | {r['backend']} | {r['batch']} | {r['ms_per_batch']:.2f} | {r['ms_per_face']:.2f} |")
    out += ["", "### End-to-end video (640×360 one-face clip, writing annotated.mp4)", "",
            "FPS = frames / wall time of `run_video`: decode, detect, align, classify, track, draw, encode. "
            "Detector `auto` = MediaPipe full-range (the default for files); `short` = short-range (the default for "
            "cameras). Per-stage ms are means per frame. RSS: the process after loading the model (start) and its "
            "peak while the video ran (the peak counter is reset after loading). CPU ms / frame is the process's "
            "CPU time (all threads) per frame: less sensitive than wall time to other jobs on the machine; with "
            "2 cores to itself the pipeline cannot run faster than 2000 / (CPU ms per frame) FPS.", "",
            "| backbone | backend | detector | frames | with face | FPS | CPU ms / frame | decode | detect | align "
            "| classify | draw | write | RSS start MB | RSS peak MB |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in e2e:
        st = r["stage_ms"]
        out.append(f"| {r['backbone']} | {r['backend']} | {r['detector']} | {r['frames']} | {r['frames_with_faces']} | "
                   f"{r['fps']:.1f} | {r['cpu_ms_per_frame']:.1f} | "
                   + " | ".join(f"{st.get(k, 0):.1f}" for k in ("decode", "detect", "align", "classify", "draw", "write"))
                   + f" | {r['start_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    flat = [r for r in e2e if r["backbone"] == "mobilenet_v2" and r["backend"] == "onnxruntime"
            and r["detector"] == "auto"]
    if len(flat) == 2:
        out += ["", f"Memory over clip length (MobileNetV2, onnxruntime): {flat[0]['frames']} frames → "
                f"{flat[0]['peak_rss_mb']:.0f} MB, {flat[1]['frames']} frames → {flat[1]['peak_rss_mb']:.0f} MB peak RSS."]
    out.append("")
    return "\n".join(out)


def write_section(text: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, leaving other sections alone."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    if SECTION in old:
        start = old.index(SECTION)
        nxt = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + (old[nxt + 1:] if nxt != -1 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = RESULTS.with_suffix(".md.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, RESULTS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=150, help="frames of the 1× clip (25 fps)")
    ap.add_argument("--long-factor", type=int, default=10, help="length of the memory clip, in clips")
    ap.add_argument("--runs", type=int, default=20, help="timed runs at batch 1 (fewer at batch 8)")
    ap.add_argument("--e2e-backends", default="onnxruntime", help="comma list; torch is slow end to end on a CPU")
    ap.add_argument("--quick", action="store_true", help="smoke run: short clips, few runs")
    ap.add_argument("--only", choices=["latency", "e2e", "pipeline"], help="run one part only")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of the pipeline comparison")
    ap.add_argument("--write", action="store_true", help=f"write the section into {RESULTS.name}")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pipeline-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--live", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--no-video", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--detector-mode", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    if args.pipeline_child:
        from video_pipeline import pipeline_child

        pipeline_child(args)
        return
    if args.quick:
        args.frames, args.long_factor, args.runs = 25, 2, 5
    import logging

    logging.basicConfig(level=logging.WARNING)
    info = machine_info()
    print(json.dumps(info))
    if args.only == "pipeline":
        from video_pipeline import encoder_cost, pipeline_compare, pipeline_markdown

        with tempfile.TemporaryDirectory(prefix="eacfer_bench_") as d:
            print("pipeline, sequential vs threaded (alternating):", flush=True)
            _, summary = pipeline_compare(Path(d), args.threads, args.frames, args.rounds, Path(__file__),
                                          _model, BACKBONES, ROOT)
            print("encoder:", flush=True)
            enc = encoder_cost(Path(d) / "one_face.mp4")
        info["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
        print()
        print(pipeline_markdown(info, summary, enc, args))
        print(f"load average at the end: {info['load_avg_1m_end']}")
        return
    with tempfile.TemporaryDirectory(prefix="eacfer_bench_") as d:
        tmp = Path(d)
        print("per-face latency:", flush=True)
        lat = latency(tmp, args.threads, args.runs) if args.only != "e2e" else []
        print("end to end:", flush=True)
        e2e = (end_to_end(tmp, args.threads, args.frames, args.long_factor, args.e2e_backends.split(","))
               if args.only != "latency" else [])
    text = to_markdown(info, lat, e2e, args)
    print()
    print(text)
    if args.write:
        write_section(text)
        print(f"wrote the section into {RESULTS}")


if __name__ == "__main__":
    main()
