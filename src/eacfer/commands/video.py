"""``eacfer video``: emotions of tracked faces in a video file, camera or stream → MP4 + CSV + JSON."""

from __future__ import annotations

import argparse

from eacfer.commands._inference_args import (
    add_classify_every_arg,
    add_model_args,
    add_ray_args,
    open_predictor,
    ray_options,
    resolve_checkpoint,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "video",
        help="recognise emotions in a video file, camera or stream",
        description="Detect, track and classify faces frame by frame. Writes annotated.mp4 (every input frame, "
        "same fps), frames.csv and summary.json into --out. Ctrl-C or a lost camera closes every output cleanly. "
        "Several sources (files, folders of videos, .txt files listing them) make a job: one folder per video "
        "plus index.csv; rerunning it skips finished videos and restarts an interrupted one cleanly. A different "
        "job into a non-empty --out is refused unless --overwrite.",
        epilog="examples: eacfer video clip.mp4 --checkpoint model.pt --out out/clip\n"
        "          eacfer video 0 --checkpoint model.onnx --out out/cam --max-frames 300\n"
        "          eacfer video interviews/ more.txt --checkpoint model.pt --out out/corpus --no-video",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="video file, camera index (0), stream URL, folder of videos, or .txt list of sources")
    add_model_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--every", type=int, default=1, help="analyse every N-th frame (default 1; all frames are written)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    p.add_argument("--smooth", type=float, default=0.5, metavar="ALPHA",
                   help="per-track exponential smoothing: weight of the newest frame in (0, 1]; 1 = off (default 0.5)")
    p.add_argument("--iou", type=float, default=0.3, help="IoU needed to continue a track (default 0.3)")
    p.add_argument("--max-age", type=int, default=10, help="analysed frames a track may miss before it ends, for detectors that do not track "
                   "(--detector-mode, retinaface, haar; default 10). The default face finder keeps a face's id "
                   "through 12 missed frames itself; this then only bounds how long its smoothing is kept")
    p.add_argument("--cam", action="store_true", help="overlay attention maps in the video")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another job's results in --out (only files a job wrote; never yours)")
    p.add_argument("--retry-errors", action="store_true", help="on rerun, retry videos that failed before")
    add_ray_args(p)
    p.add_argument("--pipeline", default="threaded", choices=["threaded", "sequential"],
                   help="threaded (default): decode, detect, classify and encode overlap on threads; cameras "
                   "drop frames rather than fall behind. sequential: one stage after another")
    add_classify_every_arg(p)
    p.add_argument("--codec", default="auto", choices=["auto", "h264", "mp4v"],
                   help="annotated.mp4 codec: auto (default) = H.264 via PyAV when installed (plays in browsers), "
                   "else MPEG-4 via OpenCV")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.every < 1:
        raise ValueError(f"--every must be >= 1, got {args.every}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    if not 0.0 < args.smooth <= 1.0:
        raise ValueError(f"--smooth must be in (0, 1], got {args.smooth}")
    if not 0.0 <= args.iou < 1.0:
        raise ValueError(f"--iou must be in [0, 1), got {args.iou}")
    if args.max_age < 0:
        raise ValueError(f"--max-age must be >= 0, got {args.max_age}")
    _refuse_photos(args.sources, args.checkpoint)  # before the default model's notice: nothing runs
    resolve_checkpoint(args)
    kw = dict(classify_every=args.classify_every, every=args.every, max_frames=args.max_frames, write_video=not args.no_video, smoothing=args.smooth,
              iou_threshold=args.iou, max_age=args.max_age, cam=args.cam, pipeline=args.pipeline, codec=args.codec)
    if args.ray is not None:
        from eacfer.infer.jobs.ray_jobs import run_videos_ray

        s = run_videos_ray(args.checkpoint, args.sources, args.out, overwrite=args.overwrite,
                           retry_errors=args.retry_errors, progress=not args.quiet, video_kw=kw, **ray_options(args))
        return _report_many(s)
    from eacfer.infer.jobs.videos import run_video_job

    with open_predictor(args, cam=args.cam) as predictor:
        s = run_video_job(predictor, args.sources, args.out, overwrite=args.overwrite,
                          retry_errors=args.retry_errors, model_file=args.checkpoint, progress=not args.quiet, **kw)
    if s["many"]:
        return _report_many(s)
    if s["already_done"]:
        print(f"already done: {args.out} holds this job's finished results for an unchanged {args.sources[0]} "
              "(nothing to do; --overwrite redoes it)")
        return 0
    st = s["stage_ms"]
    print(f"{s['frames']} frames ({s['frames_processed']} analysed, {s['frames_with_faces']} with faces), "
          f"{s['tracks']} tracks, {s['fps']} fps end-to-end")
    print("per frame (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in st.items()))
    lat = s["latency_ms"]
    if lat:
        print(f"latency (ms, frame read → labels ready): median {lat['p50']}, p90 {lat['p90']}, max {lat['max']}"
              + (f"; {s['dropped_frames']} frames dropped to keep up" if s["live"] else ""))
    for tid, t in s["per_track"].items():
        shares = ", ".join(f"{k} {v:.0%}" for k, v in sorted(t["emotion_shares"].items(), key=lambda kv: -kv[1]))
        print(f"  track {tid}: frames {t['first_frame']}–{t['last_frame']}: {shares}")
    print(f"stopped: {s['stopped']}")
    print(f"wrote {args.out}/" + ", ".join(v for v in s["outputs"].values() if v))
    if s["interrupted"]:
        return 130
    return 0 if s["frames"] > 0 else 1


def _report_many(s: dict) -> int:
    print(f"{s['videos']} videos: {s['done']} done ({s['skipped']} already done before), {s['failed']} failed, "
          f"{s['pending']} not finished; {s['frames_this_run']} frames analysed now ({s['fps_this_run']} fps)")
    for msg in s["failures"][:10]:
        print(f"  failed: {msg}")
    print(f"wrote {s['out']}/index.csv (one row per video) and one folder per video")
    if s["interrupted"]:
        print("interrupted: rerun the same command to continue (finished videos are kept)")
        return 130
    return 0 if s["done"] > 0 or s["videos"] == 0 else 1


def _refuse_photos(sources: list[str], checkpoint: str | None) -> None:
    """A photo given to ``eacfer video`` would become a one-frame annotated.mp4: point to ``eacfer predict``.

    GIFs stay accepted (they may be animated: OpenCV reads them as videos).
    """
    import shlex

    from eacfer.data.imageio import is_image_name

    photos = [s for s in sources if is_image_name(s) and not s.lower().endswith(".gif")]
    if photos:
        model = f" --checkpoint {shlex.quote(checkpoint)}" if checkpoint else ""
        raise ValueError(f"{photos[0]}: a photo, not a video; for photos use "
                         f"`eacfer predict {shlex.join(photos)}{model} --out OUT`")

