"""``eacfer predict``: emotions of every face in image files and folders → CSV + JSON (+ annotated copies)."""

from __future__ import annotations

import argparse

from eacfer.commands._inference_args import add_model_args, open_predictor


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="recognise emotions in images and folders",
        description="Detect every face in the given images (folders are searched recursively), classify its "
        "emotion, and write predictions.csv and predictions.json (one row per face; a readable image "
        "without a face gets one row with empty face fields; an unreadable file gets one row with `error`).",
        epilog="example: eacfer predict photos/ group.jpg --checkpoint runs/demo/run/model.pt --out out/pred --save-images",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    add_model_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--save-images", action="store_true", help="write annotated copies (box, label, probability bars)")
    p.add_argument("--cam", action="store_true", help="overlay the attention map (CAM) on the annotated copies")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from eacfer.infer.batch import predict_paths

    with open_predictor(args, cam=args.cam) as predictor:
        s = predict_paths(predictor, args.paths, args.out, save_images=args.save_images, cam=args.cam,
                          progress=not args.quiet)
    print(f"{s['files']} files: {s['images']} images read, {s['faces']} faces, {s['no_face']} without a face, "
          f"{s['errors']} errors")
    for msg in s["error_messages"][:10]:
        print(f"  error: {msg}")
    if s["errors"] > 10:
        print(f"  … and {s['errors'] - 10} more (see the error column)")
    print(f"wrote {s['outputs']['csv']} and {s['outputs']['json']}"
          + (f"; annotated images in {s['outputs']['annotated']}" if s["outputs"]["annotated"] else ""))
    if s["interrupted"]:
        print("interrupted: the outputs hold the files processed so far")
        return 130
    return 0 if s["images"] > 0 else 1
