"""Classifier precision benchmark: ms/face fp32 vs int8, old vs new onnxruntime session settings, agreement.

    python benchmarks/classifier_precision.py                          # both backbones at 224, batch 1 and 5
    python benchmarks/classifier_precision.py --model runs/demo/run/model.pt   # + int8 agreement on a trained model
    python benchmarks/classifier_precision.py --quick                  # smoke run

What is measured, side by side in one process, configurations alternated round by round (so a load spike
hits all of them alike), median over the rounds:

* ms per face of the classifier's onnxruntime session (input already preprocessed, outputs logits + CAMs as
  the predictor asks for them) for MobileNetV2 and the Caffe-style ResNet-50 at 224×224 (random weights with
  BatchNorm statistics measured on random images: speed does not depend on the weights), batch 1 and 5, for:
  ``fp32 legacy`` (the session settings before this change), ``fp32`` (``SESSION_SETTINGS["default"]``),
  ``int8`` (static QDQ model, default settings) and single-setting variants of fp32 (``--sweep``);
* top-1 agreement and the largest probability difference of int8 vs fp32 on the check crops (synthetic
  test faces, portrait variants). Random weights make agreement meaningless; give ``--model`` for a trained one.

Prints a Markdown table (and JSON with ``--json``) with the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

BACKBONES = ("mobilenet_v2", "resnet50_msceleb")
#: one-setting departures from the default, to show what each option is worth (``--sweep``)
SWEEP = {
    "fp32 1 thread": {"threads": 1},
    "fp32 spinning": {"spinning": True},
    "fp32 no mem pattern": {"mem_pattern": False},
    "fp32 extended opt": {"optimization": "extended"},
    "fp32 parallel exec": {"execution": "parallel", "inter_op": 2},
    "fp32 denormals as zero": {"denormal_as_zero": True},
}


def _random_model(path: Path, backbone: str, size: int) -> Path:
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo

    torch.manual_seed(0)
    net = create_model(backbone)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:  # untrained BatchNorm statistics make every activation vanish; measure them on noise
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.rand(8, 3, size, size) * 4 - 2)
    save_model(path, net.eval(), ModelInfo(backbone, list(RAFDB_CLASSES), size, list(IMAGENET_MEAN),
                                           list(IMAGENET_STD), face_size=100))
    return path


def _fp32_onnx(pt: Path) -> tuple[bytes, object]:
    from eacfer.checkpoint import load_model
    from eacfer.export import export_onnx_bytes

    net, info = load_model(pt, "cpu")
    return export_onnx_bytes(net, info, dynamic_batch=True, with_cams=True), info


def _time_session(sess, x: np.ndarray, iters: int) -> list[float]:
    """ms per face of ``iters`` runs (after one warm-up run)."""
    names = [o.name for o in sess.get_outputs()]
    sess.run(names, {"input": x})
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(names, {"input": x})
        times.append((time.perf_counter() - t0) * 1000.0 / len(x))
    return times


def speed(models: dict[str, bytes], batches: tuple[int, ...], size: int, threads: int, rounds: int, iters: int,
          sweep: bool) -> dict[str, dict[int, tuple[float, float]]]:
    """(median, min) ms/face for each configuration and batch, configurations alternated round by round."""
    from eacfer.infer.runtime.onnx_session import SESSION_SETTINGS, create_session

    configs = {"fp32 legacy": (models["fp32"], "legacy", threads), "fp32": (models["fp32"], "default", threads),
               "int8": (models["int8"], "default", threads)}
    if SESSION_SETTINGS["default"] != SESSION_SETTINGS["legacy"]:
        configs["int8 legacy"] = (models["int8"], "legacy", threads)
    if sweep:
        for name, change in SWEEP.items():
            change = dict(change)
            t = int(change.pop("threads", threads))
            configs[name] = (models["fp32"], {**SESSION_SETTINGS["default"], **change}, t)
    sessions = {name: create_session(m, t, "cpu", s) for name, (m, s, t) in configs.items()}
    rng = np.random.default_rng(0)
    out: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batches} for name in configs}
    for _ in range(rounds):
        for b in batches:
            x = rng.standard_normal((b, 3, size, size)).astype(np.float32)
            for name, sess in sessions.items():
                out[name][b].extend(_time_session(sess, x, iters))
    return {name: {b: (statistics.median(v), min(v)) for b, v in per.items()} for name, per in out.items()}


def agreement_figures(fp32: bytes, info, n_cal: int, n_check: int) -> dict:
    from eacfer.infer.runtime.calibration import default_crop_sets
    from eacfer.infer.runtime.quantize import quantize_checked

    sets = default_crop_sets(info.input_size, info.face_size, n_cal, n_check)
    int8, rec = quantize_checked(fp32, "benchmark", sets.calibration, sets.checks, sets.description, min_agreement=0.0)
    return {"int8": int8, "record": rec, "calibration": sets.calibration}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default=",".join(BACKBONES))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batches", default="1,5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--model", action="append", default=[], help="trained model.pt: also report its int8 agreement")
    ap.add_argument("--sweep", action="store_true", help="also time one-setting variants of the fp32 session")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.iters, args.size = 1, 2, 64
    batches = tuple(int(b) for b in args.batches.split(","))
    load_before = os.getloadavg()
    import onnxruntime

    report: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
                    "threads": args.threads, "rounds": args.rounds, "iters": args.iters, "speed": {}, "agreement": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for bb in [b for b in args.backbones.split(",") if b]:
            fp32, info = _fp32_onnx(_random_model(Path(tmp) / f"{bb}.pt", bb, args.size))
            q = agreement_figures(fp32, info, 32, 32)
            report["agreement"][f"{bb} (random weights)"] = q["record"]["checks"]
            ms = speed({"fp32": fp32, "int8": q["int8"]}, batches, args.size, args.threads, args.rounds, args.iters,
                       args.sweep)
            report["speed"][bb] = ms
            print(f"\n{bb} at {args.size} px, {args.threads} threads: ms/face, median (min) of {args.rounds} "
                  f"alternated rounds × {args.iters} runs")
            print("| session | " + " | ".join(f"batch {b}" for b in batches) + " | speed-up vs fp32 legacy (median) |")
            print("|---|" + "---|" * (len(batches) + 1))
            for name, per in ms.items():
                ratio = " / ".join(f"{ms['fp32 legacy'][b][0] / per[b][0]:.2f}×" for b in batches)
                cells = " | ".join(f"{per[b][0]:.2f} ({per[b][1]:.2f})" for b in batches)
                print(f"| {name} | {cells} | {ratio} |", flush=True)
    for m in args.model:
        fp32, info = _fp32_onnx(Path(m))
        rec = agreement_figures(fp32, info, 200, 300)["record"]
        report["agreement"][m] = rec["checks"]
    print("\nint8 vs fp32 (top-1 agreement, largest |Δp|):")
    for model, checks in report["agreement"].items():
        for name, c in checks.items():
            print(f"- {model}, {name} ({c['crops']}): {100 * c['agreement']:.1f}% ({c['agree']}/{c['n']}), "
                  f"max |Δp| {c['max_prob_diff']:.3f}, CAMs max |Δ| {100 * c.get('cams_rel_diff', float('nan')):.1f}% "
                  "of their range")
    report["loadavg_before"], report["loadavg_after"] = load_before, os.getloadavg()
    print(f"\nload average before {load_before[0]:.2f} / after {report['loadavg_after'][0]:.2f} "
          f"(1 min) on {report['machine']['cores']} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
