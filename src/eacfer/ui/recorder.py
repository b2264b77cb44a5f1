"""Snapshots (PNG + CSV rows) and recordings (MP4 + per-frame CSV, like ``eacfer video``).

Every file is written atomically: a recording lives in temporary files next to its destination until
it is stopped, so a crash never leaves a half-written MP4 or CSV that looks complete.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.utils.atomic import atomic_open, atomic_path

log = logging.getLogger(__name__)


def csv_columns(class_names: tuple[str, ...] | list[str]) -> list[str]:
    """The ``frames.csv`` columns of ``eacfer video`` (:func:`eacfer.infer.results.frames_csv_columns`).

    Example:
        >>> csv_columns(["a"])[-1]
        'label_frame'
    """
    from eacfer.infer.results import frames_csv_columns

    return frames_csv_columns(list(class_names))


def face_rows(analysis: Any, class_names: tuple[str, ...] | list[str]) -> list[list[Any]]:
    """The ``frames.csv`` rows of an :class:`~eacfer.ui.session.Analysis` (:func:`eacfer.infer.results.frame_csv_rows`,
    the rows ``eacfer video`` writes): one per face, or one with empty face fields for a frame without faces.

    Example:
        >>> face_rows(analysis, ("happy", "sad"))[0][:3]  # doctest: +SKIP
        [12, '0.4800', 1]
    """
    from eacfer.infer.results import frame_csv_rows

    packet = analysis.packet
    return frame_csv_rows(packet.index, packet.time_s, analysis.faces, len(class_names))


def timestamp_name(prefix: str) -> str:
    """``prefix_20261128-011502-123`` (milliseconds, so quick repeated snapshots never collide)."""
    now = _dt.datetime.now()
    return f"{prefix}_{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"


def shareable(path: str | os.PathLike[str]) -> None:
    """Give a temporary file the usual permissions (temporary files are created private, 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[:, :, ::-1])):
            raise OSError(f"{path}: could not write the PNG")
        shareable(tmp)


def save_snapshot(out_dir: str | os.PathLike[str], annotated_rgb: np.ndarray, analysis: Any) -> tuple[Path, Path]:
    """Save the annotated frame as PNG and its faces as CSV rows (a ``source`` column names the input).

    Example:
        >>> png, csv_path = save_snapshot("snapshots", annotated, analysis)  # doctest: +SKIP
    """
    out = Path(out_dir)
    stem = timestamp_name("snapshot")
    png, table = out / f"{stem}.png", out / f"{stem}.csv"
    _write_png(png, annotated_rgb)
    class_names = tuple(analysis.class_names) or (tuple(analysis.faces[0].class_names) if analysis.faces else ())
    with atomic_open(table, "w", newline="", encoding="utf-8") as fh:
        shareable(fh.name)
        writer = csv.writer(fh)
        writer.writerow(["source", *csv_columns(class_names)])
        for row in face_rows(analysis, class_names):
            writer.writerow([analysis.packet.name, *row])
    return png, table


class Recorder:
    """Writes the annotated stream to ``recording_*.mp4`` and its faces to ``recording_*.csv``.

    The MP4 holds the frames shown on screen at the rate given (the source's for files); the CSV has
    the columns of ``eacfer video``'s ``frames.csv``.

    Example:
        >>> rec = Recorder("recordings", class_names, fps=25.0, size=(640, 360))  # doctest: +SKIP
        >>> rec.write(annotated, analysis); rec.close()                          # doctest: +SKIP
    """

    def __init__(self, out_dir: str | os.PathLike[str], class_names: tuple[str, ...], fps: float,
                 size: tuple[int, int]):
        from eacfer.infer.jobs.video import VideoWriter

        out = Path(out_dir)
        stem = timestamp_name("recording")
        self.video_path, self.csv_path = out / f"{stem}.mp4", out / f"{stem}.csv"
        self.frames = 0
        self._video = VideoWriter(self.video_path, float(min(max(fps, 1.0), 60.0)), size)
        self._stack = contextlib.ExitStack()
        try:
            fh = self._stack.enter_context(atomic_open(self.csv_path, "w", newline="", encoding="utf-8"))
            shareable(fh.name)
            self._csv = csv.writer(fh)
            self._csv.writerow(csv_columns(class_names))
            self.class_names = tuple(class_names)
        except BaseException:
            self._video.abort()
            # hand the exception to the atomic writer so it deletes its temporary file
            self._stack.__exit__(*sys.exc_info())
            raise

    def write(self, annotated_rgb: np.ndarray, analysis: Any) -> None:
        """Append one annotated frame and its faces (frames of another size are resized to fit)."""
        self._video.write(np.ascontiguousarray(annotated_rgb[:, :, ::-1]))
        self._csv.writerows(face_rows(analysis, self.class_names))
        self.frames += 1

    def close(self) -> tuple[Path, Path]:
        """Finish both files (they appear under their final names now)."""
        try:
            self._video.close()
        finally:
            self._stack.close()
        return self.video_path, self.csv_path
