"""Model/detector arguments shared by ``eacfer predict`` and ``eacfer video``."""

from __future__ import annotations

import argparse
from typing import Any


def add_model_args(p: argparse.ArgumentParser, detector_mode_default: str = "auto") -> None:
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="model.pt from training or an exported .onnx")
    p.add_argument("--detector", default="mediapipe", help="face detector: mediapipe (default), haar, or none "
                   "(each image is already one aligned face)")
    p.add_argument("--detector-mode", default=detector_mode_default, choices=["auto", "short", "full"],
                   help="MediaPipe model: full-range for photos and files, short-range for cameras (auto)")
    p.add_argument("--score-threshold", type=float, default=0.6, help="minimum detector score (default 0.6)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--backend", default=None, choices=["torch", "onnxruntime"],
                   help="default: onnxruntime on CPU, torch on CUDA")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: all cores)")
    add_precision_arg(p)


def add_precision_arg(p: argparse.ArgumentParser) -> None:
    """``--precision fp32|int8`` (shared by predict, video, ui and export)."""
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"],
                   help="classifier numbers: fp32 (default) or int8 (CPU, onnxruntime; built once per model, "
                   "used only if it agrees with fp32 on >= 99%% of check faces, see docs/PRECISION.md)")


def open_predictor(args: argparse.Namespace, cam: bool = False) -> Any:
    """Build a Predictor from parsed arguments (after checking the numbers)."""
    from eacfer.infer.predictor import Predictor

    if not 0.0 < args.score_threshold < 1.0:
        raise ValueError(f"--score-threshold must be between 0 and 1, got {args.score_threshold}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    return Predictor.from_checkpoint(args.checkpoint, device=args.device, detector=args.detector,
                                     backend=args.backend, detector_mode=args.detector_mode, cam=cam,
                                     score_threshold=args.score_threshold, threads=args.threads,
                                     precision=args.precision)
