"""IoU tracking of faces across frames, with temporal smoothing of each track's probabilities.

Matching is greedy by IoU (highest overlap first), which is optimal in practice for the handful of faces
in a frame and needs no solver. A track survives ``max_age`` processed frames without a match (a blink of
the detector) before it is closed; a new id is opened for every unmatched face.

Smoothing is an exponential moving average per track: ``s ← α·p + (1 − α)·s`` where ``α = smoothing``
(1 = no smoothing, smaller = steadier labels, slower to react). The tracker keeps only open tracks plus
one small counter per track ever seen, so memory does not grow with the video's length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eacfer.infer.detect.base import box_iou
from eacfer.infer.results import FaceResult


@dataclass
class Track:
    """One tracked face."""

    id: int
    box: tuple[float, float, float, float]
    smoothed: np.ndarray
    first_frame: int
    last_frame: int
    missed: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # frames per smoothed emotion


class IoUTracker:
    """Assign stable ids to faces across frames and smooth their probabilities.

    Args:
        iou_threshold: minimum IoU between a track's last box and a face to continue the track.
        max_age: processed frames a track may go unmatched before it is closed.
        smoothing: EMA weight α of the newest frame in (0, 1]; 1 disables smoothing.

    Example:
        >>> tracker = IoUTracker(smoothing=0.5)
        >>> tracker.update(frame_result.faces, frame_result.index)  # doctest: +SKIP
        >>> frame_result.faces[0].track_id                           # doctest: +SKIP
        1
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 10, smoothing: float = 0.5,
                 keep_given_ids: bool = False):
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        if not 0.0 <= iou_threshold < 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1), got {iou_threshold}")
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.iou_threshold, self.max_age, self.smoothing = float(iou_threshold), int(max_age), float(smoothing)
        self.keep_given_ids = bool(keep_given_ids)
        self.tracks: dict[int, Track] = {}  # open tracks
        self.stats: dict[int, dict[str, Any]] = {}  # id -> first/last frame and emotion counts, every track
        self._next_id = 1
        self._class_names: tuple[str, ...] = ()

    def update(self, faces: list[FaceResult], frame_index: int = 0) -> list[FaceResult]:
        """Match ``faces`` to open tracks; set ``face.track_id`` and ``face.smoothed`` in place.

        With ``keep_given_ids`` a face that already carries a ``track_id`` (from a tracking detector, the
        :class:`~eacfer.infer.detect.finder.VideoFaceFinder`) keeps it and only gets smoothed; the others
        are matched by IoU as usual.
        """
        used: set[int] = set()  # tracks seen in this frame
        if self.keep_given_ids and any(f.track_id is not None for f in faces):
            used = self._update_given([f for f in faces if f.track_id is not None], frame_index)
            faces_by_iou = [f for f in faces if f.track_id is None]  # mixed input: IoU matching for the rest
        else:
            faces_by_iou = faces
        used |= self._match_by_iou(faces_by_iou, frame_index, exclude=set(used))
        # every track not seen in this frame ages once (a track seen by id is never aged in the same frame)
        for tid in [t for t in self.tracks if t not in used]:
            tr = self.tracks[tid]
            tr.missed += 1
            if tr.missed > self.max_age:
                del self.tracks[tid]
        return faces

    def _match_by_iou(self, faces: list[FaceResult], frame_index: int, exclude: set[int]) -> set[int]:
        """Greedy IoU matching of ``faces`` to the open tracks not in ``exclude``; unmatched faces open new
        tracks. Returns the ids of the tracks used."""
        pairs = []
        for tid, tr in self.tracks.items():
            if tid in exclude:
                continue
            for j, f in enumerate(faces):
                o = box_iou(tr.box, f.box)
                if o > 0.0 and o >= self.iou_threshold:  # boxes that do not overlap never continue a track
                    pairs.append((o, tid, j))
        pairs.sort(key=lambda t: t[0], reverse=True)
        used_t: set[int] = set()
        used_f: set[int] = set()
        for _, tid, j in pairs:
            if tid in used_t or j in used_f:
                continue
            used_t.add(tid)
            used_f.add(j)
            tr, f = self.tracks[tid], faces[j]
            a = self.smoothing
            tr.smoothed = (a * f.probabilities + (1.0 - a) * tr.smoothed).astype(np.float32)
            tr.box, tr.last_frame, tr.missed = f.box, frame_index, 0
            self._assign(f, tr)
        for j, f in enumerate(faces):
            if j in used_f:
                continue
            tr = Track(self._next_id, f.box, np.asarray(f.probabilities, np.float32).copy(), frame_index, frame_index)
            self._next_id += 1
            self.tracks[tr.id] = tr
            used_t.add(tr.id)
            self._assign(f, tr)
        return used_t

    def _update_given(self, given: list[FaceResult], frame_index: int) -> set[int]:
        """Faces whose ``track_id`` came from the detector keep it and smooth their own track; returns the ids."""
        seen: set[int] = set()
        for f in given:
            tid = int(f.track_id)  # type: ignore[arg-type]
            tr = self.tracks.get(tid)
            if tr is None:
                tr = Track(tid, f.box, np.asarray(f.probabilities, np.float32).copy(), frame_index, frame_index)
                self.tracks[tid] = tr
                self._next_id = max(self._next_id, tid + 1)
            else:
                a = self.smoothing
                tr.smoothed = (a * f.probabilities + (1.0 - a) * tr.smoothed).astype(np.float32)
                tr.box, tr.last_frame, tr.missed = f.box, frame_index, 0
            seen.add(tid)
            self._assign(f, tr)
        return seen

    def _assign(self, face: FaceResult, tr: Track) -> None:
        face.track_id = tr.id
        face.smoothed = tr.smoothed
        if not self._class_names:
            self._class_names = tuple(face.class_names)
        st = self.stats.setdefault(tr.id, {"first_frame": tr.first_frame, "last_frame": tr.last_frame,
                                           "frames": 0, "counts": np.zeros(len(face.class_names), np.int64)})
        st["last_frame"] = tr.last_frame
        st["frames"] += 1
        st["counts"][int(np.argmax(tr.smoothed))] += 1

    @property
    def num_tracks(self) -> int:
        """How many distinct tracks were opened so far."""
        return self._next_id - 1

    def summary(self) -> dict[str, Any]:
        """Per-track frames and emotion shares (of the smoothed emotion), JSON-friendly."""
        out: dict[str, Any] = {}
        for tid, st in self.stats.items():
            n = max(1, int(st["frames"]))
            shares = {c: round(float(v) / n, 4) for c, v in zip(self._class_names, st["counts"], strict=True) if v}
            top = max(shares, key=lambda c: shares[c]) if shares else None
            out[str(tid)] = {"first_frame": st["first_frame"], "last_frame": st["last_frame"],
                             "frames": int(st["frames"]), "dominant_emotion": top, "emotion_shares": shares}
        return out
