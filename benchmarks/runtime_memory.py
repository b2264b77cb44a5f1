"""Memory and start-up of the inference runtime, as whole processes under ``/usr/bin/time -v`` (issue #25).

For ``eacfer video`` with an ONNX MobileNetV2 and an ONNX ResNet-50 (random weights, exported with
``eacfer export``; speed and memory do not depend on the weights) on a 640×360 one-face clip, and for the
``fer`` peer (its own venv, when ``--fer-python`` is given or ``/tmp/fervenv`` exists), alternating, it reports:

* **peak RSS** of the whole run (``Maximum resident set size`` of ``/usr/bin/time -v``: the largest the
  process ever was; child processes are not summed, and none is started on this path);
* **start → first annotated frame**: the wall time (``Elapsed`` of ``/usr/bin/time -v``) of the same command
  with ``--max-frames 1``, i.e. from the exec of the interpreter to the exit after the first annotated frame
  was written and the video closed — an upper bound of the time to the first frame (it includes closing the
  outputs and the interpreter's exit). ``fer`` has no frame limit: it gets a one-frame clip cut from the same
  clip, so its figure has the same meaning;
* the whole clip's wall time (model loading included).

Then what the MBs are: the peak RSS (and wall time) of ``python -c "import X"`` for the runtime's big imports, and of an
onnxruntime session alone (model loaded, 200 runs at batch 1) with the CPU memory arena and the memory
pattern on and off, each with its median time per run, side by side in alternating child processes.

Never part of the tests or CI (timings of whole processes on a shared machine). Run from the repository root:

    .venv/bin/python benchmarks/runtime_memory.py --rounds 3
    # the eacfer side in another environment (e.g. a runtime-only venv without torch); models are made with
    # this interpreter, which needs the training extra:
    .venv/bin/python benchmarks/runtime_memory.py --eacfer-python /tmp/rt/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TIME = "/usr/bin/time"
IMPORTS = ["numpy", "cv2", "onnxruntime", "mediapipe", "ai_edge_litert", "torch", "eacfer.infer.predictor",
           # what a torch-free runtime must still import, together (shared libraries counted once); with
           # ai_edge_litert installed the BlazeFace detector never imports mediapipe
           "numpy, cv2, onnxruntime, ai_edge_litert", "numpy, cv2, onnxruntime, ai_edge_litert, mediapipe"]
DEFAULT_FER = Path("/tmp/fervenv/bin/python")

# fer's own video path (benchmarks/vs_fer.py), model loading included in the process
FER_CHILD = r"""
import os, sys
from fer.fer import FER
from fer.classes import Video
clip, out = sys.argv[1], sys.argv[2]
os.chdir(out)
Video(clip, outdir=out).analyze(FER(), display=False, save_frames=False, save_video=True, annotate_frames=True,
                                zip_images=False)
"""

# an onnxruntime session alone: load, 10 warm-up runs, 200 timed runs at batch 1; prints the median ms
ORT_CHILD = r"""
import json, sys, time
import numpy as np
from eacfer.infer.runtime.onnx_session import SESSION_SETTINGS, create_session
model, arena, pattern = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
settings = dict(SESSION_SETTINGS["default"], cpu_arena=arena, mem_pattern=pattern)
sess = create_session(open(model, "rb").read(), settings=settings)
inp = sess.get_inputs()[0]
x = np.random.default_rng(0).standard_normal((1, *inp.shape[1:])).astype(np.float32)
for _ in range(10):
    sess.run(None, {inp.name: x})
times = []
for _ in range(200):
    t0 = time.perf_counter()
    sess.run(None, {inp.name: x})
    times.append((time.perf_counter() - t0) * 1000)
print("RESULT " + json.dumps({"ms": sorted(times)[len(times) // 2]}))
"""


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, float | str]:
    """Run ``cmd`` under ``/usr/bin/time -v``: peak RSS (MB), wall seconds and the command's stdout."""
    r = subprocess.run([TIME, "-v", *cmd], capture_output=True, text=True, env=env, cwd=cwd)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)[:300]}\n{r.stderr.strip()[-1500:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", r.stderr)
    if not rss or not wall:
        raise SystemExit(f"no /usr/bin/time -v figures for {cmd[:3]}: {r.stderr[-500:]}")
    h, m, s = int(wall.group(1) or 0), int(wall.group(2)), float(wall.group(3))
    return {"rss_mb": int(rss.group(1)) / 1024, "wall_s": h * 3600 + m * 60 + s, "stdout": r.stdout}


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def make_models(tmp: Path, backbones: list[str]) -> dict[str, Path]:
    """Random-weight model files of each backbone, exported with ``eacfer export`` (batch 1, the default)."""
    from cpu_inference import _model

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = {}
    for b in backbones:
        pt = _model(tmp / f"{b}.pt", b)
        onnx = tmp / f"{b}.onnx"
        subprocess.run([sys.executable, "-m", "eacfer", "-q", "export", "--checkpoint", str(pt), "--out", str(onnx)],
                       env=env, check=True)
        out[b] = onnx
    return out


def make_clips(tmp: Path, frames: int) -> tuple[Path, Path]:
    """The 640×360 one-face clip of ``benchmarks/vs_fer.py`` and a one-frame clip of its first frame."""
    import cv2

    from eacfer.data.imageio import load_image
    from eacfer.demo import make_moving_face_clip

    face = load_image(ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg")[10:270, 110:350]
    clip = make_moving_face_clip(tmp / "clip.mp4", face, frames=frames, size=(640, 360), face_height=220)
    cap = cv2.VideoCapture(str(clip))
    ok, first = cap.read()
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    if not ok:
        raise SystemExit(f"{clip}: cannot read its first frame")
    one = tmp / "one_frame.mp4"
    w = cv2.VideoWriter(str(one), cv2.VideoWriter_fourcc(*"mp4v"), fps, (first.shape[1], first.shape[0]))
    w.write(first)
    w.release()
    return clip, one


def run_side_by_side(args: argparse.Namespace, tmp: Path, models: dict[str, Path], clip: Path, one: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "EACFER_CACHE_DIR": str(tmp / "cache"),
           "PYTHONWARNINGS": "ignore"}
    fer_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    tools = [f"eacfer {b}" for b in models] + (["fer"] if args.fer_python else [])
    rows: dict[tuple[str, str], list[dict]] = {}

    def once(tool: str, kind: str, rnd: int) -> dict:
        out = tmp / f"{tool.replace(' ', '_')}_{kind}_{rnd}"
        out.mkdir(parents=True, exist_ok=True)
        if tool == "fer":
            return timed([args.fer_python, "-c", FER_CHILD, str(clip if kind == "clip" else one), str(out)],
                         env=fer_env)
        cmd = [args.eacfer_python, "-m", "eacfer", "-q", "video", str(clip), "--checkpoint",
               str(models[tool.split()[1]]), "--out", str(out), "--overwrite"]
        return timed(cmd + (["--max-frames", "1"] if kind == "first" else []), env=env)

    for tool in tools:  # warm-up (file caches), not counted
        once(tool, "first", -1)
    print(f"side by side, {args.rounds} rounds alternating; load at start {load()}", flush=True)
    for rnd in range(args.rounds):
        for tool in (tools if rnd % 2 == 0 else tools[::-1]):
            for kind in ("first", "clip"):
                r = once(tool, kind, rnd)
                rows.setdefault((tool, kind), []).append(r)
                print(f"  round {rnd} {tool:28s} {kind:5s} peak RSS {r['rss_mb']:7.1f} MB  wall {r['wall_s']:6.2f} s"
                      f"  load {load()}", flush=True)
    print(f"load at end {load()}\n")
    print(f"| tool (clip {args.frames} frames 640×360) | peak RSS, whole clip (MB) | peak RSS, first frame (MB) | "
          "start → first annotated frame (s) | whole clip wall (s) |\n|---|---:|---:|---:|---:|")
    for tool in tools:
        med = {k: statistics.median(r[v] for r in rows[(tool, k)]) for k, v in
               (("clip", "rss_mb"), ("first", "rss_mb"))}
        first = statistics.median(r["wall_s"] for r in rows[(tool, "first")])
        wall = statistics.median(r["wall_s"] for r in rows[(tool, "clip")])
        print(f"| {tool} | {med['clip']:.0f} | {med['first']:.0f} | {first:.2f} | {wall:.2f} |")
    print()


def run_breakdown(args: argparse.Namespace, models: dict[str, Path]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}
    env = {k: v for k, v in env.items() if v != ""}
    print(f"imports alone (peak RSS of `python -c 'import X'`, median of {args.rounds}); load {load()}")
    print("| import | peak RSS (MB) | process wall (s) |\n|---|---:|---:|")
    for name in ["(nothing)", *IMPORTS]:
        code = "pass" if name == "(nothing)" else f"import {name}"
        try:
            runs = [timed([args.eacfer_python, "-c", code], env=env) for _ in range(args.rounds)]
            print(f"| {name} | {statistics.median(r['rss_mb'] for r in runs):.0f} | "
                  f"{statistics.median(r['wall_s'] for r in runs):.2f} |", flush=True)
        except SystemExit:
            print(f"| {name} | (not importable here) | |", flush=True)
    print()
    variants = [(1, 1), (0, 1), (1, 0), (0, 0)]
    for b, model in ({} if args.skip == "sessions" else models).items():
        res: dict[tuple[int, int], list[dict]] = {v: [] for v in variants}
        print(f"onnxruntime session alone, {b} (load + 10 warm-up + 200 runs at batch 1), alternating; load {load()}")
        for rnd in range(args.rounds):
            for v in (variants if rnd % 2 == 0 else variants[::-1]):
                r = timed([args.eacfer_python, "-c", ORT_CHILD, str(model), str(v[0]), str(v[1])], env=env)
                r["ms"] = json.loads(next(ln for ln in str(r["stdout"]).splitlines() if ln.startswith("RESULT "))[7:])["ms"]
                res[v].append(r)
        base = statistics.median(r["ms"] for r in res[(1, 1)])
        print("| cpu_mem_arena | mem_pattern | peak RSS (MB) | median ms/run | time vs default |\n|---|---|---:|---:|---:|")
        for v in variants:
            rss = statistics.median(r["rss_mb"] for r in res[v])
            ms = statistics.median(r["ms"] for r in res[v])
            print(f"| {'on' if v[0] else 'off'} | {'on' if v[1] else 'off'} | {rss:.0f} | {ms:.2f} | {ms / base:.2f}× |")
        print(f"load at end {load()}\n", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=240, help="length of the generated 640×360 clip")
    ap.add_argument("--backbones", default="mobilenet_v2,resnet50_msceleb")
    ap.add_argument("--eacfer-python", default=sys.executable,
                    help="interpreter that runs eacfer (default: this one); the tree's src/ is put first")
    ap.add_argument("--fer-python", default=str(DEFAULT_FER) if DEFAULT_FER.exists() else None,
                    help="python of a venv with fer==25.10.3 (default: /tmp/fervenv/bin/python when it exists)")
    ap.add_argument("--skip", choices=("none", "side-by-side", "breakdown", "sessions"), default="none",
                    help="leave out a part (sessions: the onnxruntime arena comparison of the breakdown)")
    args = ap.parse_args()
    if not Path(TIME).exists():
        raise SystemExit(f"{TIME} is missing (Debian: apt-get install time)")
    tmp = Path(tempfile.mkdtemp(prefix="eacfer-runtime-memory-"))
    try:
        models = make_models(tmp, args.backbones.split(","))
        clip, one = make_clips(tmp, args.frames)
        print(f"{os.cpu_count()} CPUs; eacfer python {args.eacfer_python}; fer python {args.fer_python or '(none)'}")
        if args.skip != "side-by-side":
            run_side_by_side(args, tmp, models, clip, one)
        if args.skip != "breakdown":
            run_breakdown(args, models)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
