"""Video face finder: cheap re-detection around each track, full-frame scans on a schedule, one id per person.

:class:`VideoFaceFinder` is a stateful detector for consecutive frames (``detect(frame)`` like any
detector, returning :class:`~eacfer.infer.detect.base.Detection` objects with ``track_id`` set). Per frame:

1. **Regions.** Each open track is looked for with the cheap ``roi_detector`` (BlazeFace short-range) on a
   square around where it is expected (last box moved by its velocity), ``roi_scale`` × the face size,
   cut to the frame. The face then fills about half of the region, the size short-range likes, whatever its
   size in the frame: a face that grows to fill the frame, or leaves it partly, stays found.
2. **Full scans** with ``scan_detector`` (both BlazeFace models merged for files) run every
   ``scan_every`` frames, on every frame while no track is open, in any frame where a track was not
   found in its region (it may have jumped), and when something changed away from the tracked people (a
   new face may have entered): more than ``change_share`` of a 96-px-wide grey thumbnail differs from the
   previous frame by more than 24 levels, outside each face's box grown to 5 face widths and from one face
   height above to five below (head and body). That check costs ≈0.2 ms and triggers a scan at once,
   but change-triggered scans come at most every ``change_gap`` frames (default 3: a moving camera costs
   a scan every third frame, not every frame; a change seen in between is remembered and scanned for as
   soon as the gap allows). The scan's faces continue the tracks not yet found, or open new tracks.
3. **Association.** A face continues a track when its box overlaps the track's expected box by IoU ≥
   ``iou_threshold``, or (after fast motion or a miss) when its centre is within half a face size of the
   expected centre and its size is within ×0.5 … ×2 (the position gate). Greedy, highest IoU first.
4. **Keep-alive rule.** A track that is not found stays open, unseen, for up to ``max_miss`` processed
   frames (default 12: about half a second at 25 fps); found again within that, it keeps its id. After
   ``max_miss`` misses it is closed, and a face found later gets a new id. While unseen it returns no
   face (an emotion is never read from a region where no face was found).
5. **False detections.** Faces whose keypoints do not sit like a face's (:mod:`plausible`) are dropped.
   A new track is *tentative*: its faces are returned only once it has been seen ``min_hits`` times
   (default 3) or with a score ≥ ``confident`` (default 0.75). A tentative track that disappears is
   counted as rejected and never gets an id, so lettering or a texture that fools the detector for a frame
   or two at a low score produces no output.

``stats()`` returns coverage figures for summary.json (frames with faces, tracks opened/closed/rejected,
detections per frame, scans). The finder is not thread-safe; use one per video.

Example:
    >>> from eacfer.infer.detect import create_detector  # doctest: +SKIP
    >>> finder = VideoFaceFinder(create_detector("mediapipe-short"), create_detector("mediapipe-both"))  # doctest: +SKIP
    >>> for frame in frames:  # doctest: +SKIP
    ...     for d in finder.detect(frame):
    ...         print(d.track_id, d.box, d.score)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eacfer.infer.detect.base import Detection, FaceDetector, box_iou, check_rgb_image, shift_detection
from eacfer.infer.detect.plausible import is_plausible

Box = tuple[float, float, float, float]


@dataclass
class _Track:
    key: int  # internal key (every candidate gets one)
    box: Box  # last seen (full) box
    score: float
    vx: float = 0.0
    vy: float = 0.0
    hits: int = 1
    missed: int = 0
    id: int | None = None  # public id, given when the track is confirmed

    def expected(self) -> Box:
        k = self.missed + 1
        x, y, w, h = self.box
        return (x + self.vx * k, y + self.vy * k, w, h)


def _center(b: Box) -> tuple[float, float]:
    return b[0] + b[2] / 2.0, b[1] + b[3] / 2.0


class VideoFaceFinder:
    """Stateful face finder for consecutive video frames (see the module docstring for the rules).

    Args:
        roi_detector: detector run on the region around each track (BlazeFace short-range).
        scan_detector: detector for full-frame scans (both BlazeFace models merged for files).
        scan_every: full scan every N processed frames (besides the scans triggered by misses).
        roi_scale: region side / face size.
        max_miss: processed frames a track may go unseen before it is closed.
        iou_threshold: IoU with the expected box that continues a track.
        min_hits: sightings that confirm a new track; ``confident``: a score that confirms it at once.
        change_share: share of changed thumbnail pixels outside the regions that triggers a scan
            (``None``: never; scans then come only from the schedule and misses); ``change_gap``: frames
            since the last scan before a change may trigger another.
        owns_detectors: :meth:`close` closes both detectors.
    """

    name = "video-finder"

    def __init__(
        self,
        roi_detector: FaceDetector,
        scan_detector: FaceDetector,
        scan_every: int = 10,
        roi_scale: float = 2.0,
        max_miss: int = 12,
        iou_threshold: float = 0.3,
        min_hits: int = 3,
        confident: float = 0.75,
        change_share: float | None = 0.004,
        change_gap: int = 3,
        owns_detectors: bool = True,
    ) -> None:
        if scan_every < 1:
            raise ValueError(f"scan_every must be >= 1, got {scan_every}")
        if roi_scale < 1.0:
            raise ValueError(f"roi_scale must be >= 1, got {roi_scale}")
        if max_miss < 0 or min_hits < 1:
            raise ValueError(f"max_miss must be >= 0 and min_hits >= 1, got {max_miss}, {min_hits}")
        self.roi_detector, self.scan_detector = roi_detector, scan_detector
        self.scan_every, self.roi_scale, self.max_miss = int(scan_every), float(roi_scale), int(max_miss)
        self.iou_threshold, self.min_hits, self.confident = float(iou_threshold), int(min_hits), float(confident)
        self.owns_detectors = owns_detectors
        self.change_share, self.change_gap = change_share, int(change_gap)
        self._thumb: np.ndarray | None = None
        self._pending_change = False  # a change seen while change_gap held the scan back
        self._since_change_scan = 1 << 30
        self.tracks: list[_Track] = []
        self._frame = 0
        self._next_key = 1
        self._next_id = 1
        self._since_scan = 0
        self._stats = {"frames": 0, "frames_with_faces": 0, "detections": 0, "tracks_opened": 0,
                       "tracks_closed": 0, "tracks_rejected": 0, "full_scans": 0, "roi_scans": 0,
                       "implausible_dropped": 0, "change_scans": 0, "tiles_run": 0}

    # -- matching ---------------------------------------------------------------------------------
    def _gate(self, tr: _Track, det: Detection) -> float:
        """Association strength of ``det`` to ``tr`` (IoU, or 0.01 inside the position gate, or 0)."""
        exp = tr.expected()
        fb = det.full_box if det.full_box is not None else det.box
        o = box_iou(exp, fb)
        if o >= self.iou_threshold:
            return o
        (ex, ey), (cx, cy) = _center(exp), _center(fb)
        size_t, size_d = max(exp[2], exp[3]), max(fb[2], fb[3])
        if size_t > 0 and 0.5 <= size_d / size_t <= 2.0 and np.hypot(cx - ex, cy - ey) <= 0.5 * size_t:
            return 0.01 + 0.1 * o  # weaker than any IoU match
        return 0.0

    def _plausible(self, dets: list[Detection]) -> list[Detection]:
        kept = [d for d in dets if is_plausible(d)]
        self._stats["implausible_dropped"] += len(dets) - len(kept)
        return kept

    def _roi(self, tr: _Track, width: int, height: int) -> tuple[int, int, int, int]:
        x, y, w, h = tr.expected()
        cx, cy = x + w / 2.0, y + h / 2.0
        half = max(w, h) * self.roi_scale / 2.0 + 2.0
        x0, y0 = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
        x1, y1 = int(min(width, np.ceil(cx + half))), int(min(height, np.ceil(cy + half)))
        return x0, y0, x1, y1

    def _update(self, tr: _Track, det: Detection) -> None:
        fb = det.full_box if det.full_box is not None else det.box
        (ox, oy), (nx, ny) = _center(tr.box), _center(fb)
        k = tr.missed + 1
        tr.vx = 0.5 * tr.vx + 0.5 * (nx - ox) / k
        tr.vy = 0.5 * tr.vy + 0.5 * (ny - oy) / k
        tr.box, tr.score, tr.missed = fb, det.score, 0
        tr.hits += 1

    # -- the per-frame call -----------------------------------------------------------------------
    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in this frame, with ``track_id`` set; call once per processed frame, in order."""
        img = check_rgb_image(image_rgb)
        height, width = img.shape[:2]
        found: dict[int, Detection] = {}  # track key → detection this frame
        missed_in_roi = False
        for tr in self.tracks:
            x0, y0, x1, y1 = self._roi(tr, width, height)
            if x1 - x0 < 8 or y1 - y0 < 8:
                missed_in_roi = True
                continue
            self._stats["roi_scans"] += 1
            found_here = self._plausible(self.roi_detector.detect(img[y0:y1, x0:x1]))
            cands = [shift_detection(d, x0, y0, width, height) for d in found_here]
            best = max(cands, key=lambda d: (self._gate(tr, d) > 0, self._gate(tr, d), d.score), default=None)
            if best is not None and self._gate(tr, best) > 0 and not any(
                box_iou(best.box, f.box) > 0.5 for f in found.values()
            ):
                found[tr.key] = best
            else:
                missed_in_roi = True
        self._since_scan += 1
        self._pending_change = self._changed_outside(img) or self._pending_change
        self._since_change_scan += 1
        changed = self._pending_change and self._since_change_scan >= self.change_gap
        if not self.tracks or missed_in_roi or self._since_scan >= self.scan_every or changed:
            if changed and self.tracks and not missed_in_roi and self._since_scan < self.scan_every:
                self._stats["change_scans"] += 1
            if changed:
                self._since_change_scan = 0
            self._scan(img, found)
        elif hasattr(self.scan_detector, "detect_tiles"):
            # HD frames: the small-face sweep advances one tile on every frame, so a small face entering
            # while others are tracked is found within one sweep (tiles.py); [] on frames that need no tiles
            self._absorb(self._plausible(self._counting_tiles(self.scan_detector.detect_tiles, img, 1)), found)
        for tr in self.tracks:
            if tr.key in found:
                self._update(tr, found[tr.key])
                if tr.id is None and (tr.hits >= self.min_hits or tr.score >= self.confident):
                    tr.id = self._next_id
                    self._next_id += 1
                    self._stats["tracks_opened"] += 1
            else:
                tr.missed += 1
        self._expire()
        out = []
        for tr in self.tracks:
            if tr.key in found and tr.id is not None:
                d = found[tr.key]
                d.track_id = tr.id
                out.append(d)
        out.sort(key=lambda d: d.score, reverse=True)
        self._frame += 1
        self._stats["frames"] += 1
        self._stats["frames_with_faces"] += bool(out)
        self._stats["detections"] += len(out)
        return out

    def _changed_outside(self, img: np.ndarray) -> bool:
        """Did the frame change outside the tracks' regions since the previous frame? (see module doc)"""
        if self.change_share is None:
            return False
        import cv2

        h, w = img.shape[:2]
        k = 96.0 / max(w, h)
        tw, th = max(1, round(w * k)), max(1, round(h * k))
        thumb = cv2.cvtColor(cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        prev, self._thumb = self._thumb, thumb
        if prev is None or prev.shape != thumb.shape:
            return False
        diff = cv2.absdiff(thumb, prev) > 24
        for tr in self.tracks:  # the person's own motion: face, hair, and the body below the face
            bx, by, bw, bh = tr.expected()
            x0, x1 = max(0.0, bx - 2.0 * bw), bx + 3.0 * bw
            y0, y1 = max(0.0, by - 1.0 * bh), by + 5.0 * bh
            diff[int(y0 * k):int(np.ceil(y1 * k)), int(x0 * k):int(np.ceil(x1 * k))] = False
        return float(diff.mean()) > self.change_share

    def _scan(self, img: np.ndarray, found: dict[int, Detection]) -> None:
        self._since_scan = 0
        self._pending_change = False
        self._stats["full_scans"] += 1
        self._absorb(self._plausible(self._counting_tiles(self.scan_detector.detect, img)), found)

    def _counting_tiles(self, call: Any, *args: Any) -> list[Detection]:
        """``call(*args)``, adding the tiles it ran (the small-face sweep, tiles.py) to the statistics."""
        before = getattr(self.scan_detector, "tiles_run", 0)
        dets = call(*args)
        self._stats["tiles_run"] += getattr(self.scan_detector, "tiles_run", 0) - before
        return dets

    def _absorb(self, dets: list[Detection], found: dict[int, Detection]) -> None:
        """Scan results: faces continue the tracks not found in their regions, or open new tracks."""
        # a face already found in a region is not a new face
        dets = [d for d in dets if not any(box_iou(d.box, f.box) > 0.3 for f in found.values())]
        pairs = []
        for tr in self.tracks:
            if tr.key in found:
                continue
            for j, d in enumerate(dets):
                g = self._gate(tr, d)
                if g > 0:
                    pairs.append((g, tr.key, j))
        pairs.sort(key=lambda p: p[0], reverse=True)
        used_t, used_d = set(), set()
        for _, key, j in pairs:
            if key in used_t or j in used_d:
                continue
            used_t.add(key)
            used_d.add(j)
            found[key] = dets[j]
        for j, d in enumerate(dets):
            if j in used_d:
                continue
            fb = d.full_box if d.full_box is not None else d.box
            tr = _Track(self._next_key, fb, d.score, hits=0)  # _update below counts this sighting
            self._next_key += 1
            self.tracks.append(tr)
            found[tr.key] = d
            tr.missed = 0

    def _expire(self) -> None:
        alive = []
        for tr in self.tracks:
            if tr.missed > self.max_miss:
                self._stats["tracks_closed" if tr.id is not None else "tracks_rejected"] += 1
            else:
                alive.append(tr)
        self.tracks = alive

    # -- reporting / lifetime -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Coverage figures so far (JSON-friendly), e.g. for summary.json's ``"detection"`` entry.

        ``tracks_opened``: confirmed tracks (ids given); ``tracks_closed``: those ended by ``max_miss``
        misses; ``tracks_open``: still open; ``tracks_rejected``: tentative tracks that died unconfirmed.

        Example:
            >>> VideoFaceFinder(_Nothing(), _Nothing()).stats()["detections_per_frame"]
            0.0
        """
        s: dict[str, Any] = dict(self._stats)
        s["tracks_open"] = sum(1 for t in self.tracks if t.id is not None)
        s["detections_per_frame"] = round(s["detections"] / s["frames"], 4) if s["frames"] else 0.0
        s["frames_with_faces_share"] = round(s["frames_with_faces"] / s["frames"], 4) if s["frames"] else 0.0
        s["settings"] = {"scan_every": self.scan_every, "roi_scale": self.roi_scale, "max_miss": self.max_miss,
                         "iou_threshold": self.iou_threshold, "min_hits": self.min_hits,
                         "confident": self.confident, "change_share": self.change_share,
                         "change_gap": self.change_gap}
        return s

    def reset(self) -> None:
        """Forget every track (a new video); ids restart at 1 and the statistics at 0."""
        self.__init__(self.roi_detector, self.scan_detector, self.scan_every, self.roi_scale,  # type: ignore[misc]
                      self.max_miss, self.iou_threshold, self.min_hits, self.confident, self.change_share,
                      self.change_gap, self.owns_detectors)

    def close(self) -> None:
        """Close the detectors when the finder owns them."""
        if self.owns_detectors:
            self.roi_detector.close()
            if self.scan_detector is not self.roi_detector:
                self.scan_detector.close()

    def __enter__(self) -> VideoFaceFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Nothing:
    """A detector that finds nothing (doctests)."""

    name = "nothing"

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        return []

    def close(self) -> None:
        pass


def make_video_finder(live: bool = False, score_threshold: float = 0.6, small_face: float = 64.0,
                      **kw: Any) -> VideoFaceFinder:
    """The default finder: short-range BlazeFace in the regions; full scans with both BlazeFace models
    merged for files, plus on frames larger than ≈ 880 px a sweep of one tile per frame that finds faces down
    to ``small_face`` px (:mod:`tiles`; 0 = no sweep); short-range alone for live sources (close faces, every
    millisecond counts).

    Example:
        >>> finder = make_video_finder()  # doctest: +SKIP
    """
    from eacfer.infer.detect import create_detector

    roi = create_detector("mediapipe-short", score_threshold=score_threshold)
    if live:
        return VideoFaceFinder(roi, roi, **kw)
    try:
        # HD frames: the small-face sweep (tiles.py), one tile per scan and per frame between scans
        scan = create_detector("mediapipe-both", score_threshold=score_threshold, small_face=small_face,
                               tiles_per_call=1)
    except BaseException:
        roi.close()
        raise
    return VideoFaceFinder(roi, scan, **kw)
