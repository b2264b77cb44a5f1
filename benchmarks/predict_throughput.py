"""``eacfer predict`` throughput: today's one-process predict vs the streamed job vs throughput mode, one run.

    python benchmarks/predict_throughput.py                # print the table
    python benchmarks/predict_throughput.py --write        # also replace the "Large jobs" section of RESULTS.md
    python benchmarks/predict_throughput.py --quick        # smoke run (few images, one round)

Same folder, same predictor, same process, in alternating rounds (A B C A B C …, the median per variant):

* **baseline** — ``predict_paths`` exactly as it was before the job layer (``src/eacfer/infer/jobs/photos.py`` at
  ``--baseline-ref``, loaded from git), i.e. today's ``eacfer predict``;
* **streamed** — the resumable job (ledger + CSV/JSON Lines flushed per file), one process (``--workers 0``);
* **workers** — throughput mode: decode + detect + align in ``--workers`` processes, faces classified in
  batches of ``--batch-size`` in the main process (worker start-up included in the time).

The folder: ``--images`` JPEGs made from the bundled public-domain astronaut portrait at 640–1600 px, a third
with three faces side by side, a few without a face. The model has random weights (speed does not depend on
them): MobileNetV2 or the paper's ResNet-50 at 224 px, on onnxruntime (the CPU default). images/s = files /
wall time of ``predict_paths``. The load average is recorded: on a shared machine every number is slower.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Large jobs: `eacfer predict` throughput"


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


def _photos(folder: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    from eacfer.data.imageio import load_image

    face = load_image(ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg")
    head = face[10:270, 110:350]
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        side = int(rng.integers(640, 1601))
        if i % 10 == 9:  # no face
            img = Image.fromarray(rng.integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8))
        elif i % 3 == 2:  # three faces
            canvas = np.full((300, 3 * 280 + 40, 3), 128, np.uint8)
            for k in range(3):
                tile = head[:, ::-1] if k % 2 else head
                canvas[20:280, 20 + k * 280:20 + k * 280 + 240] = tile
            img = Image.fromarray(canvas).resize((side, side * 300 // canvas.shape[1]))
        else:
            img = Image.fromarray(face).resize((side, side))
        img.save(folder / f"p{i:04d}.jpg", quality=90)
    return folder


def _baseline(ref: str):
    """``eacfer.infer.jobs.photos`` as it was at ``ref`` (today's predict), imported from git under another name."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:src/eacfer/infer/jobs/photos.py"], check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "batch_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("batch_baseline", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=90)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--baseline-ref", default="9dade15", help="git commit of today's predict (before the job layer)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.images, args.rounds = 12, 1
    sys.path.insert(0, str(ROOT / "src"))
    from eacfer.infer.jobs.photos import predict_paths
    from eacfer.infer.predictor import Predictor

    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="eacfer_predict_bench_"))
    os.environ.setdefault("EACFER_CACHE_DIR", str(tmp / "cache"))
    try:
        photos = _photos(tmp / "photos", args.images)
        model = _model(tmp / "model.pt", args.backbone)
        base = _baseline(args.baseline_ref)
        times: dict[str, list[float]] = {"baseline": [], "streamed": [], "workers": []}
        faces: dict[str, int] = {}
        stages: dict[str, dict] = {}
        startup: list[float] = []
        with Predictor.from_checkpoint(model, device="cpu") as p:
            p.predict(photos / "p0000.jpg")  # warm-up: detector + ONNX session
            for r in range(args.rounds):
                for name in times:
                    out = tmp / f"out_{name}_{r}"
                    t0 = time.perf_counter()
                    if name == "baseline":
                        s = base.predict_paths(p, [photos], out, progress=False)
                    else:
                        s = predict_paths(p, [photos], out, progress=False, model_file=model,
                                          workers=args.workers if name == "workers" else 0,
                                          batch_size=args.batch_size)
                        stages[name] = dict(s["stage_ms"])
                        if s.get("worker_startup_s") is not None:
                            startup.append(s["worker_startup_s"])
                    times[name].append(time.perf_counter() - t0)
                    faces[name] = s["faces"]
                    shutil.rmtree(out)
        load_end = os.getloadavg()[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.images
    ips = {k: n / statistics.median(v) for k, v in times.items()}
    cmd = (f"python benchmarks/predict_throughput.py --images {args.images} --rounds {args.rounds} "
           f"--backbone {args.backbone} --workers {args.workers} --batch-size {args.batch_size}")
    lines = [
        SECTION, "",
        f"- command: `{cmd}`",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load_start:.2f} at start and {load_end:.2f} at end "
        f"(**measured under load** on a shared machine; the lead re-measures on a quiet one)",
        f"- folder: {n} JPEGs 640–1600 px (⅓ with three faces, 1 in 10 without a face), {args.backbone} 224 px, "
        f"random weights, onnxruntime; median of {args.rounds} alternating rounds",
        "",
        "| variant | images/s | vs baseline | faces | per-image stage ms |",
        "|---|---|---|---|---|",
    ]
    labels = {"baseline": f"today's predict (`{args.baseline_ref}`, one process)",
              "streamed": "streamed, resumable job (`--workers 0`)",
              "workers": f"throughput mode (`--workers {args.workers} --batch-size {args.batch_size}`)"}
    for k in times:
        st = ", ".join(f"{a} {b:.1f}" for a, b in stages.get(k, {}).items()) or "—"
        lines.append(f"| {labels[k]} | {ips[k]:.2f} | {ips[k] / ips['baseline']:.2f}× | {faces[k]} | {st} |")
    if startup:
        w = statistics.median(times["workers"])
        steady = (n - 1) / max(1e-9, w - statistics.median(startup))
        lines += ["", f"Throughput mode's worker start-up (pool start → first file back) took a median "
                  f"{statistics.median(startup):.2f} s of its {w:.2f} s; without it: {steady:.2f} images/s "
                  f"({steady / ips['baseline']:.2f}× the baseline) — what a large folder approaches."]
    lines += ["", "Stage ms of throughput mode are per image in the worker processes (decode, detect, align) and "
              "the main process's batched classify divided over the batch's images; they overlap in time, so "
              "they do not add up to 1000 / images/s.", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        old = RESULTS.read_text(encoding="utf-8")
        if SECTION in old:
            head, rest = old.split(SECTION, 1)
            nxt = rest.find("\n## ")
            old = head + (rest[nxt + 1:] if nxt >= 0 else "")
        RESULTS.write_text(old.rstrip("\n") + "\n\n" + text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
