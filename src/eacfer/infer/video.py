"""Run the predictor over a video file, camera or stream and write the results.

``run_video`` writes into ``out_dir``:

* ``annotated.mp4`` — every input frame at the source's frame rate, with boxes, track ids, smoothed labels
  and probability bars (frames skipped by ``every=N`` show the latest analysed faces); H.264 when PyAV is
  installed (plays in web browsers), else OpenCV's MPEG-4 (see :mod:`eacfer.infer.writers`);
* ``frames.csv`` — ``frame, time_s, track, x, y, w, h, score, emotion, p_<class>…, smoothed_emotion,
  s_<class>…, label_frame``, one row per face of every analysed frame (``score`` = detector confidence,
  ``s_<class>`` = the track's smoothed probabilities whose arg-max is ``smoothed_emotion``, ``label_frame``
  = the frame whose face crop gave ``emotion`` and ``p_<class>``: this frame, or an earlier one with
  ``classify_every`` > 1); an analysed frame without faces gets one row with empty face fields;
* ``summary.json`` — frames (written), frames_read, dropped_frames (live sources), frames_with_faces,
  tracks, end-to-end ``fps``, ``latency_ms`` percentiles (age of a frame when its labels are ready), mean
  per-stage ms and each stage's share of the wall time (``stage_utilisation``), the model file (name,
  SHA-256, backbone, classes), detector settings, the video codec, emotion shares per track, and why the
  stream stopped.

By default the stages run as a pipeline (:mod:`eacfer.infer.pipeline`): decode, detect and classify on
three threads, drawing and encoding on a fourth; results are consumed in frame order on the calling
thread, which tracks faces and writes the CSV. ``pipeline="sequential"`` is the one-thread baseline.

Every output is written under a temporary name and renamed when complete, so a file that exists is
always a finished, valid one. Ctrl-C, a lost camera, a truncated file or an unexpected error all end the
loop the same way: outputs so far are flushed, closed and renamed; the summary says what happened.
Memory stays constant: the queues between stages are bounded and nothing per frame is kept.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.infer.results import FaceResult, FrameResult
from eacfer.infer.sources import FrameSource, open_source
from eacfer.infer.writers import VideoWriter, write_frame
from eacfer.utils.atomic import atomic_open, write_json
from eacfer.utils.interrupt import HoldCtrlC

log = logging.getLogger(__name__)

__all__ = ["VideoWriter", "open_source", "run_video", "frames_csv_header"]


def frames_csv_header(class_names: list[str] | tuple[str, ...]) -> list[str]:
    """Columns of ``frames.csv``: ``frame, time_s, track, x, y, w, h, score, emotion, p_<class>…,
    smoothed_emotion, s_<class>…, label_frame`` (``score``: detector confidence; ``s_``: the track's smoothed
    probabilities; ``label_frame``: the frame whose face crop gave ``emotion`` and ``p_``).

    Example:
        >>> frames_csv_header(["a", "b"])[7:]
        ['score', 'emotion', 'p_a', 'p_b', 'smoothed_emotion', 's_a', 's_b', 'label_frame']
    """
    return ["frame", "time_s", "track", "x", "y", "w", "h", "score", "emotion",
            *[f"p_{c}" for c in class_names], "smoothed_emotion", *[f"s_{c}" for c in class_names], "label_frame"]


def _face_row(r: FrameResult, f: FaceResult) -> list[Any]:
    smoothed = f.smoothed if f.smoothed is not None else [None] * len(f.probabilities)
    return [r.index, f"{r.time_s:.4f}", f.track_id, *(f"{v:.1f}" for v in f.box), f"{float(f.score):.4f}",
            f.emotion, *(f"{float(p):.5f}" for p in f.probabilities), f.smoothed_emotion or "",
            *("" if p is None else f"{float(p):.5f}" for p in smoothed),
            r.index if f.label_frame is None else f.label_frame]


class _InlineWriter:
    """Draw and encode on the caller's thread (the sequential pipeline)."""

    def __init__(self, writer: VideoWriter, render: Callable[[Any], np.ndarray],
                 timestamp: Callable[[Any], float | None]):
        self.writer, self.render, self.timestamp = writer, render, timestamp
        self.busy = {"draw": 0.0, "write": 0.0}

    def submit(self, item: Any) -> None:
        t0 = time.perf_counter()
        bgr = self.render(item)
        t1 = time.perf_counter()
        write_frame(self.writer, bgr, self.timestamp(item))
        self.busy["draw"] += t1 - t0
        self.busy["write"] += time.perf_counter() - t1

    def close(self) -> Path | None:
        return self.writer.close()


def _render(item: tuple[np.ndarray, list[FaceResult], bool, float | None]) -> np.ndarray:
    import cv2

    from eacfer.infer.viz import annotate

    rgb, faces, cam, _ = item
    return cv2.cvtColor(annotate(rgb, faces, cam=cam, copy=False), cv2.COLOR_RGB2BGR)


def run_video(
    predictor: Any,
    source: str | int | os.PathLike[str] | FrameSource,
    out_dir: str | os.PathLike[str],
    every: int = 1,
    max_frames: int | None = None,
    write_video: bool = True,
    smoothing: float = 0.5,
    iou_threshold: float = 0.3,
    max_age: int = 10,
    cam: bool = False,
    progress: bool = True,
    on_frame: Callable[[FrameResult], None] | None = None,
    pipeline: str = "threaded",
    codec: str = "auto",
    queue_size: int = 2,
    classify_every: int | str = 1,
) -> dict[str, Any]:
    """Analyse a video/camera/stream and write ``annotated.mp4``, ``frames.csv`` and ``summary.json``.

    Args:
        predictor: an :class:`eacfer.infer.predictor.Predictor`.
        source: path, camera index, URL or an opened :class:`~eacfer.infer.sources.FrameSource`.
        every: analyse every N-th frame (all frames are still written to the video).
        max_frames: stop after this many frames.
        write_video: ``False`` skips ``annotated.mp4`` (faster).
        smoothing: EMA weight of the newest frame for each track's probabilities (1 = none).
        iou_threshold, max_age: tracker settings (see :class:`eacfer.infer.tracking.IoUTracker`).
        on_frame: called with each :class:`FrameResult` once its rows are written and its frame is queued
            for the video (UI previews, tests); the frame may still be being drawn on another thread.
        pipeline: ``"threaded"`` (default; stages overlap on threads, live sources drop frames they cannot
            keep up with) or ``"sequential"`` (one stage after another, every camera frame analysed).
        codec: ``"auto"`` (H.264 through PyAV when installed, else OpenCV's MPEG-4), ``"h264"`` or ``"mp4v"``.
        queue_size: frames each queue of the threaded pipeline holds (files; live sources use 1).
        classify_every: classify each tracked face every N-th analysed frame and carry its labels over in
            between (:mod:`eacfer.infer.reuse`; 1 = every face on every analysed frame; ``"auto"`` = 2, or 3
            for ResNet-50 backbones).

    Returns:
        The summary dict (also written to ``summary.json``); ``summary["stopped"]`` says why it ended,
        ``summary["interrupted"]`` is True after Ctrl-C.

    Example:
        >>> s = run_video(Predictor.from_checkpoint("model.pt"), "clip.mp4", "out/clip")  # doctest: +SKIP
        >>> s["frames"], s["tracks"], s["latency_ms"]["p50"]                                # doctest: +SKIP
        (250, 1, 41.3)
    """
    from eacfer.infer.labelling import UNCERTAIN, labelling_options
    from eacfer.infer.tracking import IoUTracker
    from eacfer.infer.writers import BackgroundWriter, resolve_codec

    if pipeline not in ("threaded", "sequential"):
        raise ValueError(f"unknown pipeline {pipeline!r}; choose from threaded, sequential")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    codec = resolve_codec(codec) if write_video else codec
    out.mkdir(parents=True, exist_ok=True)
    # ids from the video face finder (detect/finder.py) are kept; the tracker smooths per id
    tracker = IoUTracker(iou_threshold=iou_threshold, max_age=max_age, smoothing=smoothing, keep_given_ids=True)
    src = source if isinstance(source, FrameSource) else open_source(source)
    names = list(predictor.class_names)
    counts = {"frames": 0, "processed": 0, "with_faces": 0, "faces": 0, "uncertain": 0}
    stage_sums: dict[str, float] = {}
    sink: Any = None
    frames: Any = None
    interrupted, error = False, None
    last_faces: list[FaceResult] = []
    t_start = time.perf_counter()

    def add(stage: str, ms: float) -> None:
        stage_sums[stage] = stage_sums.get(stage, 0.0) + ms

    bar = None
    with contextlib.ExitStack() as stack:
        stack.callback(src.close)
        fh = stack.enter_context(atomic_open(out / "frames.csv", newline=""))
        rows = csv.writer(fh)
        rows.writerow(frames_csv_header(names))
        if progress:
            from eacfer.utils.progress import progress_bar as tqdm

            total = max_frames if src.frame_count is None else min(src.frame_count, max_frames or src.frame_count)
            bar = stack.enter_context(tqdm(total=total, unit="frame", desc=Path(src.description).name or "video",
                                           disable=None, leave=False))
        hold = HoldCtrlC()
        try:
            if write_video:
                writer = VideoWriter(out / "annotated.mp4", src.fps, src.size, codec=codec)
                # a live source that drops frames: timestamps keep the video in real time (H.264 only)
                def stamp(item: tuple[Any, ...]) -> float | None:
                    return item[3]

                sink = (BackgroundWriter(writer, _render, maxsize=queue_size, timestamp=stamp)
                        if pipeline == "threaded" else _InlineWriter(writer, _render, stamp))
            frames = predictor.frames(src, every=every, max_frames=max_frames, cam=cam, pipeline=pipeline,
                                      classify_every=classify_every,
                                      **({"queue_size": queue_size} if pipeline == "threaded" else {}))
            for r in frames:
                with hold:  # this frame's CSV rows, video frame and counts: all or none
                    counts["frames"] += 1
                    for k, v in r.timings.items():
                        if k != "total" and (r.processed or k == "decode"):
                            add(k, v)
                    if r.processed:
                        t0 = time.perf_counter()
                        tracker.update(r.faces, r.index or 0)
                        add("track", (time.perf_counter() - t0) * 1000)
                        counts["processed"] += 1
                        counts["faces"] += len(r.faces)
                        counts["with_faces"] += bool(r.faces)
                        counts["uncertain"] += sum(f.emotion == UNCERTAIN for f in r.faces)
                        last_faces = r.faces
                        for f in r.faces:
                            rows.writerow(_face_row(r, f))
                        if not r.faces:
                            rows.writerow([r.index, f"{r.time_s:.4f}"] + [""] * (2 * len(names) + 9))
                    if sink is not None:
                        live_time = r.time_s if src.live and pipeline == "threaded" else None
                        sink.submit((r.image, last_faces, cam and r.processed, live_time))
                    if bar is not None:
                        bar.update(1)
                    if on_frame is not None:
                        on_frame(r)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted (Ctrl-C) after %d frames; closing outputs", counts["frames"])
        except Exception as e:  # finalise what we have, then report the error
            error = e
        finally:
            try:
                with hold:  # a Ctrl-C while the last frames are encoded waits for the file to be complete
                    if frames is not None:
                        frames.close()  # stop the stages before the source is closed
                    if sink is not None:
                        try:
                            sink.close()  # every frame handed over is written before the file is finalised
                        except Exception as e:  # noqa: BLE001 - reported like any other error
                            error = error or e
            except KeyboardInterrupt:
                interrupted = True
    wall = time.perf_counter() - t_start
    if interrupted:
        stopped = f"interrupted by the user (Ctrl-C) after {counts['frames']} frames"
    elif error is not None:
        stopped = f"error after {counts['frames']} frames: {error}"
    elif max_frames is not None and counts["frames"] >= max_frames:
        stopped = f"reached --max-frames {max_frames}"
    else:
        stopped = src.stop_reason or "end of stream"
    if sink is not None:
        for k, v in sink.busy.items():
            add(k, v * 1000)
    per_frame = {"decode", "draw", "write"}
    stage_ms = {k: round(v / max(1, counts["frames"] if k in per_frame else counts["processed"]), 3)
                for k, v in stage_sums.items()}
    pstats = frames.stats() if frames is not None else {"pipeline": pipeline, "frames_read": counts["frames"],
                                                        "dropped_frames": 0, "latency_ms": {},
                                                        "stage_utilisation": {}, "detection": {}}
    util = dict(pstats["stage_utilisation"])
    if sink is not None and wall > 0:
        util.update({k: round(v / wall, 3) for k, v in sink.busy.items()})
    video_written = sink is not None and sink.writer.frames > 0
    summary: dict[str, Any] = {
        "source": src.description,
        "live": src.live,
        "video_fps": round(src.fps, 3),
        "size": list(src.size),
        "frames": counts["frames"],
        "frames_read": pstats["frames_read"],
        "dropped_frames": pstats["dropped_frames"],
        "frames_processed": counts["processed"],
        "frames_with_faces": counts["with_faces"],
        "faces": counts["faces"],
        "tracks": tracker.num_tracks,
        "fps": round(counts["frames"] / wall, 2) if wall > 0 else None,
        "wall_s": round(wall, 3),
        "pipeline": pipeline,
        "latency_ms": pstats["latency_ms"],
        "stage_ms": stage_ms,
        "stage_utilisation": util,
        "every": every,
        "labels": pstats.get("labels", {"classify_every": classify_every}),
        "smoothing": smoothing,
        "backend": predictor.backend,
        "detector": predictor.detector_name,
        "detector_settings": pstats["detection"],
        "model": predictor.model_record(),
        "video_codec": sink.writer.description if sink is not None else None,
        "stopped": stopped,
        "interrupted": interrupted,
        "ended_cleanly": not interrupted and error is None and (src.ended_cleanly or (
            max_frames is not None and counts["frames"] >= max_frames)),
        "outputs": {"video": "annotated.mp4" if video_written else None,
                    "frames_csv": "frames.csv", "summary": "summary.json"},
        "per_track": tracker.summary(),
    }
    if hasattr(predictor, "detection_stats"):  # coverage of the video face finder (detect/finder.py)
        summary["detection"] = predictor.detection_stats()
    options = labelling_options(predictor)
    summary.update(options)  # only when set: a default run's summary is what it always was
    if "min_confidence" in options:
        summary["uncertain"] = counts["uncertain"]  # analysed faces (rows of frames.csv) labelled uncertain
    write_json(out / "summary.json", summary)
    if error is not None:
        raise error
    return summary
