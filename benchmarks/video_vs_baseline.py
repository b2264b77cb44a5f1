"""`eacfer video` today vs `eacfer video` as it was before the speed work, side by side (issue #11).

The baseline is the project's own code at an earlier commit (default ``a247a63``, the last commit before the
pipeline, finder and encoder changes), extracted with ``git archive`` into a temporary folder and run through
its own CLI; the current code runs through the current CLI. Both read the same clips and the same model file,
write annotated.mp4 as ``eacfer video`` does, and alternate (order reversed every round). FPS is each run's
``summary.json`` figure (frames written / wall time of the frame loop, model already loaded).

    .venv/bin/python benchmarks/video_vs_baseline.py --rounds 3 --frames 240

Random-init weights (speed does not depend on them). Prints one line per run and a table of medians and
ratios with the 1-minute load average; ``--json`` writes every row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))


def extract_baseline(rev: str, dest: Path) -> Path:
    """``src/`` of commit ``rev`` unpacked under ``dest`` (git archive, no checkout touched)."""
    tar = dest / "baseline.tar"
    with open(tar, "wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], stdout=fh, check=True)
    with tarfile.open(tar) as tf:
        tf.extractall(dest / "baseline", filter="data")
    return dest / "baseline" / "src"


def run_cli(src: Path, cache: Path, clip: Path, model: Path, out: Path, extra: list[str]) -> dict:
    """One ``eacfer video`` run of the code in ``src``; its summary.json."""
    env = {**os.environ, "PYTHONPATH": str(src), "EACFER_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "eacfer", "-q", "video", str(clip), "--checkpoint", str(model), "--out", str(out),
           *extra]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="a247a63", help="git revision of the baseline (default a247a63)")
    ap.add_argument("--backbones", default="mobilenet_v2,resnet50_msceleb")
    ap.add_argument("--frames", type=int, default=240, help="frames per clip (640x360, 25 fps)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None, help="write every run's row here")
    ap.add_argument("--int8", action="store_true",
                    help="also run the current code with --precision int8 (refused, and the run stops, when the "
                         "model's int8 check fails)")
    ap.add_argument("--every-frame", action="store_true",
                    help="also run the current code with --classify-every 1 (every face classified on every frame)")
    args = ap.parse_args()

    from cpu_inference import _model
    from video_pipeline import make_multi_face_clip

    from eacfer.data.imageio import load_image
    from eacfer.demo import make_moving_face_clip

    tmp = Path(tempfile.mkdtemp(prefix="eacfer-vs-baseline-"))
    old_src = extract_baseline(args.baseline, tmp)
    new_src = ROOT / "src"
    face = load_image(ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg")[10:270, 110:350]
    clips = {"1 face": make_moving_face_clip(tmp / "one.mp4", face, frames=args.frames, size=(640, 360),
                                             face_height=220),
             "5 faces": make_multi_face_clip(tmp / "five.mp4", face, 5, frames=args.frames)}
    versions = {"before": (old_src, tmp / "cache_old", []), "now": (new_src, tmp / "cache_new", [])}
    if args.every_frame:
        versions["now N=1"] = (new_src, tmp / "cache_new", ["--classify-every", "1"])
    if args.int8:
        versions["now int8"] = (new_src, tmp / "cache_new", ["--precision", "int8"])
    rows = []
    print(f"baseline {args.baseline} vs working tree; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    for backbone in args.backbones.split(","):
        model = _model(tmp / f"{backbone}.pt", backbone)
        todo = ["1 face", "5 faces"] if backbone == "mobilenet_v2" else ["1 face"]
        for name in todo:
            for v, (src, cache, extra) in versions.items():  # warm-up: ONNX export, int8 check, caches: not timed
                run_cli(src, cache, clips[name], model, tmp / f"warm_{v[-4:]}_{backbone}_{name[0]}",
                        ["--max-frames", "10", *extra])
            for rnd in range(args.rounds):
                order = list(versions) if rnd % 2 == 0 else list(versions)[::-1]
                for v in order:
                    src, cache, extra = versions[v]
                    s = run_cli(src, cache, clips[name], model, tmp / f"{backbone}_{name[0]}_{v[-4:]}_{rnd}", extra)
                    row = {"backbone": backbone, "clip": name, "version": v, "round": rnd, "fps": s["fps"],
                           "frames": s["frames"], "faces_per_frame": round(s["faces"] / max(1, s["frames"]), 3),
                           "load_1m": round(os.getloadavg()[0], 2)}
                    rows.append(row)
                    print(f"  {backbone:17s} {name:8s} {v:8s} round {rnd}: {s['fps']:6.1f} FPS, "
                          f"faces/frame {row['faces_per_frame']}, load {row['load_1m']}", flush=True)
    print("\n| backbone | clip | version | FPS | ratio to before | faces/frame |")
    print("|---|---|---|---:|---:|---:|")
    for backbone in args.backbones.split(","):
        for name in clips:
            sel = {v: [r for r in rows if r["backbone"] == backbone and r["clip"] == name and r["version"] == v]
                   for v in versions}
            if not sel["before"]:
                continue
            base = statistics.median(r["fps"] for r in sel["before"])
            for v, rs in sel.items():
                if rs:
                    fps = statistics.median(r["fps"] for r in rs)
                    faces = statistics.mean(r["faces_per_frame"] for r in rs)
                    print(f"| {backbone} | {name} | {v} | {fps:.1f} | {fps / base:.2f}× | {faces:.2f} |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
