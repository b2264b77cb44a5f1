"""Run the predictor over a video file, camera or stream and write the results.

``run_video`` writes into ``out_dir``:

* ``annotated.mp4`` — every input frame at the source's frame rate, with boxes, track ids, smoothed labels
  and probability bars (frames skipped by ``every=N`` show the latest analysed faces);
* ``frames.csv`` — ``frame, time_s, track, x, y, w, h, emotion, p_<class>…, smoothed_emotion``, one row per
  face of every analysed frame (an analysed frame without faces gets one row with empty face fields);
* ``summary.json`` — frames, frames_with_faces, tracks, end-to-end ``fps``, mean per-stage ms, emotion
  shares per track, and why the stream stopped.

Every output is written under a temporary name and renamed when complete, so a file that exists is
always a finished, valid one. Ctrl-C, a lost camera, a truncated file or an unexpected error all end the
loop the same way: outputs so far are flushed, closed and renamed; the summary says what happened.
Memory stays constant: frames are processed one at a time and nothing per frame is kept.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.infer.results import FaceResult, FrameResult
from eacfer.infer.sources import FrameSource, open_source
from eacfer.utils.atomic import atomic_open, write_json
from eacfer.utils.interrupt import HoldCtrlC

log = logging.getLogger(__name__)

__all__ = ["VideoWriter", "open_source", "run_video", "frames_csv_header"]


class VideoWriter:
    """MP4 writer that only makes ``path`` appear once the video is complete (temp file + rename).

    Example:
        >>> with VideoWriter("out/annotated.mp4", fps=25, size=(640, 360)) as w:  # doctest: +SKIP
        ...     w.write(frame_bgr)
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int], fourcc: str = "mp4v"):
        import cv2

        self._cv2 = cv2
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (int(size[0]), int(size[1]))
        # the temporary name keeps the .mp4 suffix: OpenCV picks the container from the extension
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".tmp.mp4", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.frames = 0
        self._w = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps), self.size)
        if not self._w.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise OSError(f"{self.path}: cannot open an MP4 writer (codec {fourcc!r}, {self.size[0]}×{self.size[1]})")

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one BGR frame (resized if a source changes resolution mid-stream)."""
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self.size:
            frame_bgr = self._cv2.resize(frame_bgr, self.size, interpolation=self._cv2.INTER_AREA)
        self._w.write(frame_bgr)
        self.frames += 1

    def close(self) -> Path | None:
        """Finalise the MP4 and rename it into place; returns the path, or ``None`` when no frame was written."""
        if self._w is None:
            return self.path if self.path.exists() else None
        self._w.release()
        self._w = None
        if self.frames == 0:
            self.tmp.unlink(missing_ok=True)
            return None
        with open(self.tmp, "rb") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp made it private (0600); give it normal permissions
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial video."""
        if self._w is not None:
            self._w.release()
            self._w = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        self.close()


def frames_csv_header(class_names: list[str] | tuple[str, ...]) -> list[str]:
    """Columns of ``frames.csv``."""
    return ["frame", "time_s", "track", "x", "y", "w", "h", "emotion",
            *[f"p_{c}" for c in class_names], "smoothed_emotion"]


def _face_row(r: FrameResult, f: FaceResult) -> list[Any]:
    return [r.index, f"{r.time_s:.4f}", f.track_id, *(f"{v:.1f}" for v in f.box), f.emotion,
            *(f"{float(p):.5f}" for p in f.probabilities), f.smoothed_emotion or ""]


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
        on_frame: called with each :class:`FrameResult` after it is written (UI previews, tests).

    Returns:
        The summary dict (also written to ``summary.json``); ``summary["stopped"]`` says why it ended,
        ``summary["interrupted"]`` is True after Ctrl-C.

    Example:
        >>> s = run_video(Predictor.from_checkpoint("model.pt"), "clip.mp4", "out/clip")  # doctest: +SKIP
        >>> s["frames"], s["tracks"]                                                        # doctest: +SKIP
        (250, 1)
    """
    import cv2

    from eacfer.infer.tracking import IoUTracker
    from eacfer.infer.viz import annotate

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    # ids from the video face finder (detect/finder.py) are kept; the tracker smooths per id
    tracker = IoUTracker(iou_threshold=iou_threshold, max_age=max_age, smoothing=smoothing, keep_given_ids=True)
    src = source if isinstance(source, FrameSource) else open_source(source)
    names = list(predictor.class_names)
    stage_sums: dict[str, float] = {}
    counts = {"frames": 0, "processed": 0, "with_faces": 0, "faces": 0}
    writer: VideoWriter | None = None
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
                writer = VideoWriter(out / "annotated.mp4", src.fps, src.size)
            for r in predictor.stream(src, every=every, max_frames=max_frames, cam=cam):
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
                        last_faces = r.faces
                        for f in r.faces:
                            rows.writerow(_face_row(r, f))
                        if not r.faces:
                            rows.writerow([r.index, f"{r.time_s:.4f}"] + [""] * (len(names) + 7))
                    if writer is not None:
                        t0 = time.perf_counter()
                        img = annotate(r.image, last_faces, cam=cam and r.processed, copy=False)
                        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
                        add("draw", (time.perf_counter() - t0) * 1000)
                        t0 = time.perf_counter()
                        writer.write(bgr)
                        add("write", (time.perf_counter() - t0) * 1000)
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
            if writer is not None:
                writer.close()
    wall = time.perf_counter() - t_start
    if interrupted:
        stopped = f"interrupted by the user (Ctrl-C) after {counts['frames']} frames"
    elif error is not None:
        stopped = f"error after {counts['frames']} frames: {error}"
    elif max_frames is not None and counts["frames"] >= max_frames:
        stopped = f"reached --max-frames {max_frames}"
    else:
        stopped = src.stop_reason or "end of stream"
    per_frame = {"decode", "draw", "write"}
    stage_ms = {k: round(v / max(1, counts["frames"] if k in per_frame else counts["processed"]), 3)
                for k, v in stage_sums.items()}
    summary: dict[str, Any] = {
        "source": src.description,
        "live": src.live,
        "video_fps": round(src.fps, 3),
        "size": list(src.size),
        "frames": counts["frames"],
        "frames_processed": counts["processed"],
        "frames_with_faces": counts["with_faces"],
        "faces": counts["faces"],
        "tracks": tracker.num_tracks,
        "fps": round(counts["frames"] / wall, 2) if wall > 0 else None,
        "wall_s": round(wall, 3),
        "stage_ms": stage_ms,
        "every": every,
        "smoothing": smoothing,
        "backend": predictor.backend,
        "detector": predictor.detector_name,
        "stopped": stopped,
        "interrupted": interrupted,
        "ended_cleanly": not interrupted and error is None and (src.ended_cleanly or (
            max_frames is not None and counts["frames"] >= max_frames)),
        "outputs": {"video": "annotated.mp4" if writer is not None and writer.frames else None,
                    "frames_csv": "frames.csv", "summary": "summary.json"},
        "per_track": tracker.summary(),
    }
    if hasattr(predictor, "detection_stats"):  # coverage of the video face finder (detect/finder.py)
        summary["detection"] = predictor.detection_stats()
    write_json(out / "summary.json", summary)
    if error is not None:
        raise error
    return summary


def make_moving_face_clip(
    out: str | os.PathLike[str],
    face_rgb: np.ndarray,
    frames: int = 50,
    size: tuple[int, int] = (640, 360),
    fps: float = 25.0,
    second_face_from: int | None = None,
    face_height: int = 200,
) -> Path:
    """Write a synthetic MP4: ``face_rgb`` (a portrait, e.g. the bundled astronaut) gliding across a
    textured background; with ``second_face_from`` a mirrored copy appears from that frame on.

    Used by tests, the demo and the CPU benchmark (no video files need to be shipped).

    Example:
        >>> make_moving_face_clip("clip.mp4", load_image(asset("astronaut.jpg")), frames=25)  # doctest: +SKIP
    """
    import cv2

    w, h = int(size[0]), int(size[1])
    scale = face_height / face_rgb.shape[0]
    face = cv2.resize(face_rgb, (max(1, int(face_rgb.shape[1] * scale)), face_height), interpolation=cv2.INTER_AREA)
    face = cv2.cvtColor(face, cv2.COLOR_RGB2BGR)
    fh, fw = face.shape[:2]
    if fh > h or fw > w:
        raise ValueError(f"face {fw}×{fh} does not fit a {w}×{h} clip; lower face_height")
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([(xx * 200 // max(1, w)), (yy * 200 // max(1, h)), np.full_like(xx, 90)], -1).astype(np.uint8)
    with VideoWriter(out, fps, (w, h)) as wr:
        for i in range(frames):
            frame = bg.copy()
            t = i / max(1, frames - 1)
            # glide left → right in the left half of the frame, gently up and down
            x = int((w // 2 - fw) * t) if second_face_from is not None else int((w - fw) * t)
            y = int((h - fh) * (0.5 + 0.3 * np.sin(2 * np.pi * t)))
            frame[y:y + fh, x:x + fw] = face
            if second_face_from is not None and i >= second_face_from:
                frame[(h - fh) // 2:(h - fh) // 2 + fh, w - fw - 10:w - 10] = face[:, ::-1]
            wr.write(frame)
    return Path(out)
