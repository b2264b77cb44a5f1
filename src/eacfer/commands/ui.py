"""``eacfer ui``: the live desktop app (camera, video, photos) — needs the ``ui`` extra (PySide6)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eacfer.commands._inference_args import add_classify_every_arg, add_min_confidence_arg, add_precision_arg


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ui",
        help="live desktop app: camera, video and photos with emotions and attention maps",
        description="Open the desktop app. Without --checkpoint/--source it reopens the last model and source; with no model "
        "of your own it uses the bundled starter model (a FER2013 mini-Xception, not EAC; docs/CREDITS.md). "
        "Keys: Space pause, S snapshot, R record, C attention map, T smoothed/raw, arrows previous/next.",
        epilog="example: eacfer ui --checkpoint runs/demo/run/model.pt --source 0",
    )
    p.add_argument("--checkpoint", metavar="FILE", help="model file (.pt from training or exported .onnx)")
    p.add_argument("--source", metavar="0|PATH", nargs="+",
                   help="camera index, video file, stream URL, photo(s) or a folder of photos")
    p.add_argument("--detector", default="mediapipe", help="face detector (default: mediapipe)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="inference device")
    p.add_argument("--backend", default=None, choices=["torch", "onnxruntime"],
                   help="classifier backend (default: onnxruntime on CPU, torch on CUDA)")
    add_precision_arg(p)
    add_classify_every_arg(p, "videos and cameras: ")
    add_min_confidence_arg(p)
    p.add_argument("--cam", action="store_true", default=None,
                   help="start with the attention-map overlay on (default: as last time)")
    p.add_argument("--output-dir", metavar="DIR", help="where snapshots and recordings go (default ~/Pictures/eacfer)")
    p.add_argument("--settings", metavar="FILE", help="settings file (INI) instead of the user's default store")
    p.add_argument("--screenshot", metavar="PNG", help="with --quit-after: save a screenshot of the window")
    p.add_argument("--quit-after", metavar="SECONDS", type=float,
                   help="play the source this long (from the first frame shown), then exit 0")
    p.add_argument("--size", metavar="WxH", help="window size, e.g. 1280x720 (useful with --screenshot)")
    p.set_defaults(func=run)
    return p


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size: expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    if w < 200 or h < 150:
        raise ValueError(f"--size: {text} is too small (at least 200x150)")
    return w, h


def run(args: argparse.Namespace) -> int:
    if args.quit_after is not None and args.quit_after < 0:
        raise ValueError("--quit-after must be >= 0 seconds")
    if args.screenshot and args.quit_after is None:
        raise ValueError("--screenshot needs --quit-after SECONDS (when to take it)")
    size = _parse_size(args.size)
    if args.checkpoint and not Path(args.checkpoint).is_file():
        # a typo in an explicit path is an argument error; a file that exists but cannot be loaded is
        # reported inside the window (the app stays usable and another model can be opened)
        raise FileNotFoundError(f"{args.checkpoint}: model file not found")
    try:
        from eacfer.ui.qtenv import require_pyside

        require_pyside()
    except ModuleNotFoundError as e:
        print(f"eacfer ui: error: {e}", file=sys.stderr)
        return 2
    from eacfer.ui.app import run_app

    source = None
    if args.source:
        source = args.source[0] if len(args.source) == 1 else list(args.source)
    return run_app(checkpoint=args.checkpoint, source=source, detector=args.detector, device=args.device,
                   backend=args.backend, output_dir=args.output_dir, screenshot=args.screenshot,
                   quit_after=args.quit_after, settings_path=args.settings, size=size, cam=args.cam,
                   precision=args.precision, classify_every=args.classify_every,
                   min_confidence=args.min_confidence)
