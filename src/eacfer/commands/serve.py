"""``eacfer serve``: an HTTP API, a WebSocket stream and a live browser page (needs the ``serve`` extra)."""

from __future__ import annotations

import argparse
import os
import sys

from eacfer.commands._inference_args import (
    add_classify_every_arg,
    add_model_args,
    predictor_options,
    resolve_checkpoint,
)

API_KEY_ENV = "EACFER_API_KEY"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="HTTP API + live browser page: POST images, stream a webcam, get faces and emotions as JSON",
        description="Serve the model over HTTP: POST /v1/predict (one image), /v1/predict/batch, GET /v1/model, "
        "WS /v1/stream (JPEG frames in, JSON out, with tracking), /healthz, /readyz, /metrics, and a page at / "
        "that streams the browser's webcam. Binds 127.0.0.1 unless --host says otherwise. SIGTERM stops "
        "accepting, finishes the requests in flight and exits 0.",
        epilog="examples: eacfer serve --checkpoint model.onnx          # then open http://127.0.0.1:8000/\n"
        "          curl -F file=@photo.jpg http://127.0.0.1:8000/v1/predict\n"
        "          EACFER_API_KEY=secret eacfer serve --host 0.0.0.0 --cors https://app.example.org",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    add_classify_every_arg(p, "WebSocket streams: ")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port, printed)")
    p.add_argument("--workers", type=int, default=1, help="worker threads, each with its own model (default 1)")
    p.add_argument("--queue", type=int, default=16, help="requests that may wait; more get 503 (default 16)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="classify up to N waiting images in one run (default 8; 1 = no request batching)")
    p.add_argument("--max-body-mb", type=float, default=10.0, help="largest request body in MB (default 10)")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="largest image in pixels (default 40 M)")
    p.add_argument("--max-images", type=int, default=16, help="most images per batch request (default 16)")
    p.add_argument("--max-faces", type=int, default=32, help="most faces per image (default 32)")
    p.add_argument("--max-ws-fps", type=float, default=30.0,
                   help="most WebSocket frames a client may send per second (default 30)")
    p.add_argument("--api-key", default=None,
                   help=f"require this key (X-API-Key or Authorization: Bearer); default: ${API_KEY_ENV} if set")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="allow browser pages of ORIGIN to call the API (repeatable; default: no CORS)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from eacfer.serve.limits import MB, ServeConfig
    from eacfer.serve.server import require_serve_extra, serve

    try:
        require_serve_extra()
    except ModuleNotFoundError as e:
        print(f"eacfer serve: error: {e}", file=sys.stderr)
        return 2
    options = predictor_options(args)  # checked before the model loads (and the same as predict/video)
    resolve_checkpoint(args)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"{args.checkpoint}: model file not found")
    if not args.max_body_mb > 0:
        raise ValueError(f"--max-body-mb must be > 0, got {args.max_body_mb}")
    config = ServeConfig(
        checkpoint=args.checkpoint, host=args.host, port=args.port, workers=args.workers, queue_size=args.queue,
        max_batch=args.max_batch, max_body_bytes=int(args.max_body_mb * MB), max_pixels=args.max_pixels,
        max_images=args.max_images, max_faces=args.max_faces, max_ws_fps=args.max_ws_fps,
        api_key=args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV),
        cors=list(args.cors), classify_every=args.classify_every,
        predictor_options=options)
    return serve(config, announce=lambda line: print(line, flush=True))
