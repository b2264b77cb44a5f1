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

from ..utils.atomic import atomic_open, atomic_path

log = logging.getLogger(__name__)


def csv_columns(class_names: tuple[str, ...] | list[str]) -> list[str]:
    """The ``frames.csv`` columns of ``eacfer video``: frame, time, track, box, emotion, p_<class>…, smoothed."""
    return ["frame", "time_s", "track", "x", "y", "w", "h", "emotion", *[f"p_{c}" for c in class_names],
            "smoothed_emotion"]


def face_rows(analysis: Any) -> list[dict[str, Any]]:
    """One CSV row per face of an :class:`~eacfer.ui.session.Analysis`."""
    rows = []
    packet = analysis.packet
    for face in analysis.faces:
        x, y, w, h = (float(v) for v in face.box)
        row: dict[str, Any] = {
            "frame": packet.index,
            "time_s": round(float(packet.time_s), 3),
            "track": "" if getattr(face, "track_id", None) is None else face.track_id,
            "x": round(x, 1), "y": round(y, 1), "w": round(w, 1), "h": round(h, 1),
            "emotion": face.emotion,
        }
        for name, p in zip(face.class_names, face.probabilities, strict=True):
            row[f"p_{name}"] = round(float(p), 6)
        row["smoothed_emotion"] = face.smoothed_emotion or ""
        rows.append(row)
    return rows


def timestamp_name(prefix: str) -> str:
    """``prefix_20261128-011502-123`` (milliseconds, so quick repeated snapshots never collide)."""
    now = _dt.datetime.now()
    return f"{prefix}_{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[:, :, ::-1])):
            raise OSError(f"{path}: could not write the PNG")


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
        writer = csv.DictWriter(fh, fieldnames=["source", *csv_columns(class_names)])
        writer.writeheader()
        for row in face_rows(analysis):
            writer.writerow({"source": analysis.packet.name, **row})
    return png, table


class Recorder:
    """Writes the annotated stream to ``recording_*.mp4`` and its faces to ``recording_*.csv``.

    Example:
        >>> rec = Recorder("recordings", class_names, fps=25.0, size=(640, 360))  # doctest: +SKIP
        >>> rec.write(annotated, analysis); rec.close()                          # doctest: +SKIP
    """

    def __init__(self, out_dir: str | os.PathLike[str], class_names: tuple[str, ...], fps: float,
                 size: tuple[int, int]):
        import cv2

        out = Path(out_dir)
        stem = timestamp_name("recording")
        self.video_path, self.csv_path = out / f"{stem}.mp4", out / f"{stem}.csv"
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(min(max(fps, 1.0), 60.0))
        self.frames = 0
        self._stack = contextlib.ExitStack()
        try:
            tmp_video = self._stack.enter_context(atomic_path(self.video_path, suffix=".mp4"))
            self._writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self._writer.isOpened():
                raise OSError(f"{self.video_path}: cannot create an MP4 writer (no mp4v encoder in OpenCV?)")
            fh = self._stack.enter_context(atomic_open(self.csv_path, "w", newline="", encoding="utf-8"))
            self._csv = csv.DictWriter(fh, fieldnames=csv_columns(class_names))
            self._csv.writeheader()
        except BaseException:
            # hand the exception to the atomic writers so they delete their temporary files
            self._stack.__exit__(*sys.exc_info())
            raise

    def write(self, annotated_rgb: np.ndarray, analysis: Any) -> None:
        """Append one annotated frame and its faces; frames of another size are letterboxed to fit."""
        import cv2

        frame = annotated_rgb
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
        for row in face_rows(analysis):
            self._csv.writerow(row)
        self.frames += 1

    def close(self) -> tuple[Path, Path]:
        """Finish both files (they appear under their final names now)."""
        self._writer.release()
        self._stack.close()
        return self.video_path, self.csv_path
