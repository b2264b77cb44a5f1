"""``eacfer predict``: emotions of every face in image files and folders → CSV + JSON (+ annotated copies)."""

from __future__ import annotations

import argparse

from eacfer.commands._inference_args import (
    add_model_args,
    add_ray_args,
    open_predictor,
    ray_options,
    resolve_checkpoint,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="recognise emotions in images and folders",
        description="Detect every face in the given images (folders are searched recursively), classify its "
        "emotion, and write predictions.csv, predictions.jsonl and predictions.json (one row per face; a readable "
        "image without a face gets one row with empty face fields; an unreadable file gets one row with `error`) "
        "and summary.json. Rows are streamed per file: rerunning the same command into the same --out resumes "
        "(files already done, by path + size + modification time, are skipped; changed files are redone). "
        "A different job into a non-empty --out is refused unless --overwrite.",
        epilog="examples: eacfer predict photos/ --out out/pred        # the bundled starter model (FER2013 mini-Xception)\n"
        "          eacfer predict photos/ group.jpg --checkpoint runs/demo/run/model.pt --out out/pred --save-images\n"
        "          eacfer predict /data/corpus --checkpoint model.pt --out out/corpus --workers 2      # throughput mode\n"
        "          eacfer predict /shared/corpus --checkpoint model.pt --out /shared/out --ray auto    # a Ray cluster",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    add_model_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--save-images", action="store_true", help="write annotated copies (box, label, probability bars)")
    p.add_argument("--cam", action="store_true", help="overlay the attention map (CAM) on the annotated copies")
    p.add_argument("--resume", action="store_true",
                   help="insist on continuing the job in --out (rerunning the same command resumes anyway)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another job's results in --out (predictions.*, files.jsonl, summary.json, the "
                   "annotated copies it made; never a file it did not write)")
    p.add_argument("--retry-errors", action="store_true", help="on resume, retry files that failed before")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="throughput mode: decode and detect in N worker processes, classify in batches (default 0: "
                   "one process)")
    p.add_argument("--batch-size", type=int, default=32, help="faces per classifier batch in throughput mode")
    add_ray_args(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from eacfer.infer.jobs.photos import predict_paths

    if args.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {args.workers}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    resolve_checkpoint(args)
    opts = dict(save_images=args.save_images, cam=args.cam, progress=not args.quiet,
                resume=True if args.resume else None, overwrite=args.overwrite, retry_errors=args.retry_errors)
    if args.ray is not None:
        from eacfer.infer.jobs.ray_jobs import predict_paths_ray

        s = predict_paths_ray(args.checkpoint, args.paths, args.out, **opts, **ray_options(args))
    else:
        with open_predictor(args, cam=args.cam) as predictor:
            s = predict_paths(predictor, args.paths, args.out, workers=args.workers, batch_size=args.batch_size,
                              model_file=args.checkpoint, **opts)
    print(f"{s['files']} files: {s['images']} images read, {s['faces']} faces, {s['no_face']} without a face, "
          f"{s['errors']} errors")
    if s.get("found_by_fallback"):
        print(f"  {s['found_by_fallback']} images: faces found by retinaface, which looked again where the "
              "default detector found none (the note column says which)")
    if s["no_face"] and s.get("no_face_note"):
        print(f"  images without a face: {s['no_face_note']}")
    if s["skipped"]:
        print(f"  {s['skipped']} files already done in an earlier run (skipped), {s['processed']} processed now")
    if s["images_per_s"]:
        print(f"  {s['images_per_s']} images/s; per image (ms): "
              + ", ".join(f"{k} {v:.1f}" for k, v in s["stage_ms"].items()))
    if s["videos_ignored"]:
        print(f"  {s['videos_ignored']} video files in the folders were left out (e.g. {s['videos'][0]}); "
              "use `eacfer video` for them")
    for msg in s["error_messages"][:10]:
        print(f"  error: {msg}")
    if s["errors"] > 10:
        print(f"  … and {s['errors'] - 10} more (see the error column)")
    print(f"wrote {s['outputs']['csv']}, {s['outputs']['json']} and {s['outputs']['summary']}"
          + (f"; annotated images in {s['outputs']['annotated']}" if s["outputs"]["annotated"] else ""))
    if s["interrupted"]:
        print("interrupted: the outputs hold the files processed so far; rerun the same command to continue")
        return 130
    return 0 if s["images"] > 0 else 1
