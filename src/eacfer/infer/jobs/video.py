"""Run the predictor over a video file, camera or stream and write the results.

``run_video`` writes into ``out_dir``:

* ``annotated.mp4`` — every input frame at the source's frame rate, with boxes, track ids, smoothed labels
  and probability bars (frames skipped by ``every=N`` show the latest analysed faces); H.264 when PyAV is
  installed (plays in web browsers), else OpenCV's MPEG-4 (see :mod:`eacfer.infer.jobs.writers`);
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

By default the stages run as a pipeline (:mod:`eacfer.infer.stream.pipeline`): decode, detect and classify on
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
from typing import Any, Protocol

import numpy as np

from eacfer.infer.jobs.writers import VideoWriter, write_frame
from eacfer.infer.protocols import FaceAnalyser
from eacfer.infer.results import FaceResult, FrameResult
from eacfer.infer.results import frames_csv_columns as frames_csv_header
from eacfer.infer.stream.sources import FrameSource, open_source
from eacfer.utils.atomic import atomic_open, write_json
from eacfer.utils.interrupt import HoldCtrlC

log = logging.getLogger(__name__)

__all__ = ["VideoWriter", "open_source", "run_video", "frames_csv_header", "FrameSink"]


class FrameSink(Protocol):
    """Where :func:`run_video` hands each frame, in frame order: ``write`` once per frame read, ``close`` once
    at the end (also after an error or Ctrl-C: what was written so far is finalised)."""

    def write(self, r: FrameResult) -> None:
        """Take one frame (skipped frames of ``every=N`` too: ``r.processed`` is False)."""
        ...

    def close(self) -> None:
        """Finish the output."""
        ...


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


def _stamp(item: tuple[Any, ...]) -> float | None:
    return item[3]  # the live time of _render's item (None for files)


class TallySink:
    """Tracks faces across frames (ids, smoothed probabilities) and counts what ``summary.json`` reports; it runs
    first, so the CSV and the video see the tracks of the frame they write."""

    def __init__(self, tracker: Any, uncertain_label: str):
        self.tracker, self.uncertain_label = tracker, uncertain_label
        self.counts = {"frames": 0, "processed": 0, "with_faces": 0, "faces": 0, "uncertain": 0}
        self.stage_sums: dict[str, float] = {}

    def add(self, stage: str, ms: float) -> None:
        self.stage_sums[stage] = self.stage_sums.get(stage, 0.0) + ms

    def write(self, r: FrameResult) -> None:
        self.counts["frames"] += 1
        for k, v in r.timings.items():
            if k != "total" and (r.processed or k == "decode"):
                self.add(k, v)
        if r.processed:
            t0 = time.perf_counter()
            self.tracker.update(r.faces, r.index or 0)
            self.add("track", (time.perf_counter() - t0) * 1000)
            self.counts["processed"] += 1
            self.counts["faces"] += len(r.faces)
            self.counts["with_faces"] += bool(r.faces)
            self.counts["uncertain"] += sum(f.emotion == self.uncertain_label for f in r.faces)

    def close(self) -> None:
        pass


class CsvSink:
    """``frames.csv``: the rows of each analysed frame (:meth:`FrameResult.csv_rows`), renamed into place on close."""

    def __init__(self, path: Path, class_names: list[str]):
        self.num_classes = len(class_names)
        self._stack = contextlib.ExitStack()
        self._rows = csv.writer(self._stack.enter_context(atomic_open(path, newline="")))
        self._rows.writerow(frames_csv_header(class_names))

    def write(self, r: FrameResult) -> None:
        if r.processed:
            self._rows.writerows(r.csv_rows(self.num_classes))

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> CsvSink:
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        # an exception escaping the driver (not one it reports in the summary) leaves no frames.csv behind
        return self._stack.__exit__(*exc)


class AnnotatedVideoSink:
    """``annotated.mp4``: every frame read, with the latest analysed faces drawn (on a background thread for the
    threaded pipeline)."""

    def __init__(self, path: Path, src: FrameSource, codec: str, pipeline: str, queue_size: int, cam: bool):
        from eacfer.infer.jobs.writers import BackgroundWriter

        self.writer = VideoWriter(path, src.fps, src.size, codec=codec)
        self.encoder: Any = (BackgroundWriter(self.writer, _render, maxsize=queue_size, timestamp=_stamp)
                             if pipeline == "threaded" else _InlineWriter(self.writer, _render, _stamp))
        # a live source that drops frames: timestamps keep the video in real time (H.264 only)
        self.live_times = src.live and pipeline == "threaded"
        self.cam = cam
        self.last_faces: list[FaceResult] = []

    @property
    def busy(self) -> dict[str, float]:
        """Seconds spent drawing and encoding (``draw``, ``write``)."""
        return dict(self.encoder.busy)

    def write(self, r: FrameResult) -> None:
        if r.processed:
            self.last_faces = r.faces
        self.encoder.submit((r.image, self.last_faces, self.cam and r.processed,
                             r.time_s if self.live_times else None))

    def close(self) -> None:
        self.encoder.close()  # every frame handed over is written before the file is finalised


class _ProgressSink:
    def __init__(self, bar: Any):
        self.bar = bar

    def write(self, r: FrameResult) -> None:
        self.bar.update(1)

    def close(self) -> None:
        pass


class _CallbackSink:
    def __init__(self, fn: Callable[[FrameResult], None]):
        self.fn = fn

    def write(self, r: FrameResult) -> None:
        self.fn(r)

    def close(self) -> None:
        pass


def run_video(
    predictor: FaceAnalyser,
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

    A driver: it opens the source and the frame pipeline, hands each frame to the sinks in order (tracking and
    counts, ``frames.csv``, ``annotated.mp4``, the progress bar, ``on_frame``), closes them however the loop
    ends and writes the summary.

    Args:
        predictor: an :class:`eacfer.infer.predictor.Predictor` (any :class:`~eacfer.infer.protocols.FaceAnalyser`).
        source: path, camera index, URL or an opened :class:`~eacfer.infer.stream.sources.FrameSource`.
        every: analyse every N-th frame (all frames are still written to the video).
        max_frames: stop after this many frames.
        write_video: ``False`` skips ``annotated.mp4`` (faster).
        smoothing: EMA weight of the newest frame for each track's probabilities (1 = none).
        iou_threshold, max_age: tracker settings (see :class:`eacfer.infer.stream.tracking.IoUTracker`).
        on_frame: called with each :class:`FrameResult` once its rows are written and its frame is queued
            for the video (UI previews, tests); the frame may still be being drawn on another thread.
        pipeline: ``"threaded"`` (default; stages overlap on threads, live sources drop frames they cannot
            keep up with) or ``"sequential"`` (one stage after another, every camera frame analysed).
        codec: ``"auto"`` (H.264 through PyAV when installed, else OpenCV's MPEG-4), ``"h264"`` or ``"mp4v"``.
        queue_size: frames each queue of the threaded pipeline holds (files; live sources use 1).
        classify_every: classify each tracked face every N-th analysed frame and carry its labels over in
            between (:mod:`eacfer.infer.stream.reuse`; 1 = every face on every analysed frame; ``"auto"`` = 2, or 3
            for ResNet-50 backbones).

    Returns:
        The summary dict (also written to ``summary.json``); ``summary["stopped"]`` says why it ended,
        ``summary["interrupted"]`` is True after Ctrl-C.

    Example:
        >>> s = run_video(Predictor.from_checkpoint("model.pt"), "clip.mp4", "out/clip")  # doctest: +SKIP
        >>> s["frames"], s["tracks"], s["latency_ms"]["p50"]                                # doctest: +SKIP
        (250, 1, 41.3)
    """
    from eacfer.infer.jobs.writers import resolve_codec
    from eacfer.infer.labelling import UNCERTAIN
    from eacfer.infer.stream.pipeline import check_stream_args
    from eacfer.infer.stream.tracking import IoUTracker

    check_stream_args(every, max_frames, pipeline)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    codec = resolve_codec(codec) if write_video else codec
    out.mkdir(parents=True, exist_ok=True)
    # ids from the video face finder (detect/finder.py) are kept; the tracker smooths per id
    tally = TallySink(IoUTracker(iou_threshold=iou_threshold, max_age=max_age, smoothing=smoothing,
                                 keep_given_ids=True), UNCERTAIN)
    src = source if isinstance(source, FrameSource) else open_source(source)
    video: AnnotatedVideoSink | None = None
    frames: Any = None
    interrupted, error = False, None
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.callback(src.close)
        sinks: list[FrameSink] = [tally, stack.enter_context(CsvSink(out / "frames.csv", list(predictor.class_names)))]
        if progress:
            sinks.append(_ProgressSink(stack.enter_context(_progress_bar(src, max_frames))))
        hold = HoldCtrlC()
        try:
            if write_video:
                video = AnnotatedVideoSink(out / "annotated.mp4", src, codec, pipeline, queue_size, cam)
                sinks.insert(2, video)
            if on_frame is not None:
                sinks.append(_CallbackSink(on_frame))
            frames = predictor.frames(src, every=every, max_frames=max_frames, cam=cam, pipeline=pipeline,
                                      classify_every=classify_every,
                                      **({"queue_size": queue_size} if pipeline == "threaded" else {}))
            for r in frames:
                with hold:  # this frame's CSV rows, video frame and counts: all or none
                    for sink in sinks:
                        sink.write(r)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted (Ctrl-C) after %d frames; closing outputs", tally.counts["frames"])
        except Exception as e:  # finalise what we have, then report the error
            error = e
        finally:
            try:
                with hold:  # a Ctrl-C while the last frames are encoded waits for the file to be complete
                    if frames is not None:
                        frames.close()  # stop the stages before the source is closed
                    if video is not None:
                        try:
                            video.close()
                        except Exception as e:  # noqa: BLE001 - reported like any other error
                            error = error or e
            except KeyboardInterrupt:
                interrupted = True
    wall = time.perf_counter() - t_start
    summary = _summary(predictor, src, tally, video, frames, wall, interrupted=interrupted, error=error,
                       every=every, max_frames=max_frames, pipeline=pipeline, smoothing=smoothing,
                       classify_every=classify_every)
    write_json(out / "summary.json", summary)
    if error is not None:
        raise error
    return summary


def _progress_bar(src: FrameSource, max_frames: int | None) -> Any:
    from eacfer.utils.progress import progress_bar as tqdm

    total = max_frames if src.frame_count is None else min(src.frame_count, max_frames or src.frame_count)
    return tqdm(total=total, unit="frame", desc=Path(src.description).name or "video", disable=None, leave=False)


def _stopped(src: FrameSource, frames_done: int, interrupted: bool, error: BaseException | None,
             max_frames: int | None) -> str:
    """Why the stream ended, in words (``summary["stopped"]``)."""
    if interrupted:
        return f"interrupted by the user (Ctrl-C) after {frames_done} frames"
    if error is not None:
        return f"error after {frames_done} frames: {error}"
    if max_frames is not None and frames_done >= max_frames:
        return f"reached --max-frames {max_frames}"
    return src.stop_reason or "end of stream"


def _summary(predictor: FaceAnalyser, src: FrameSource, tally: TallySink, video: AnnotatedVideoSink | None,
             frames: Any, wall: float, *, interrupted: bool, error: BaseException | None, every: int,
             max_frames: int | None, pipeline: str, smoothing: float, classify_every: int | str) -> dict[str, Any]:
    """The contents of ``summary.json`` (keys in the order earlier versions wrote them)."""
    from eacfer.infer.labelling import labelling_options

    counts = tally.counts
    if video is not None:
        for k, v in video.busy.items():
            tally.add(k, v * 1000)
    per_frame = {"decode", "draw", "write"}
    stage_ms = {k: round(v / max(1, counts["frames"] if k in per_frame else counts["processed"]), 3)
                for k, v in tally.stage_sums.items()}
    pstats: dict[str, Any] = frames.stats() if frames is not None else {"pipeline": pipeline, "frames_read": counts["frames"],
                                                        "dropped_frames": 0, "latency_ms": {},
                                                        "stage_utilisation": {}, "detection": {}}
    util = dict(pstats["stage_utilisation"])
    if video is not None and wall > 0:
        util.update({k: round(v / wall, 3) for k, v in video.busy.items()})
    reached_max = max_frames is not None and counts["frames"] >= max_frames
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
        "tracks": tally.tracker.num_tracks,
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
        "video_codec": video.writer.description if video is not None else None,
        "stopped": _stopped(src, counts["frames"], interrupted, error, max_frames),
        "interrupted": interrupted,
        "ended_cleanly": not interrupted and error is None and (src.ended_cleanly or reached_max),
        "outputs": {"video": "annotated.mp4" if video is not None and video.writer.frames > 0 else None,
                    "frames_csv": "frames.csv", "summary": "summary.json"},
        "per_track": tally.tracker.summary(),
    }
    detection_stats = getattr(predictor, "detection_stats", None)
    if detection_stats is not None:  # coverage of the video face finder (detect/finder.py)
        summary["detection"] = detection_stats()
    options = labelling_options(predictor)
    summary.update(options)  # only when set: a default run's summary is what it always was
    if "min_confidence" in options:
        summary["uncertain"] = counts["uncertain"]  # analysed faces (rows of frames.csv) labelled uncertain
    return summary
