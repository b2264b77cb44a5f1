"""Classify each tracked face every N-th analysed frame and carry its labels over in between.

Why: on two CPU cores the classifier is the video pipeline's largest stage (ResNet-50 ≈ 45 ms a face
here), while a face's expression changes over a few frames, not every 40 ms; the per-track labels are
smoothed over frames anyway (``--smoothing``). With ``every=2`` each tracked face is classified on every
other analysed frame and its box (from this frame's detection) gets the probabilities and CAM of its
latest classification; ``FaceResult.label_frame`` (``frames.csv`` column ``label_frame``) says which frame
that was. ``every=1`` classifies every face on every analysed frame.

``auto`` (the command line's and the app's default) is 2, or 3 for the ResNet-50 backbones, whose
classifier costs about six times MobileNetV2's (:func:`resolve_classify_every`).

Faces are staggered by track id (track *t* is classified when ``(frame + t) % every == 0``), so five faces
cost about 5/N classifications on every frame instead of 5 on one frame and none on the next; a new track
is classified at once, and a track is never carried over longer than ``every - 1`` frames. Faces without a
track id (a detector mode without the tracking finder) are classified on every frame.

The label agreement with ``every=1`` is measured by ``benchmarks/label_reuse.py`` (docs in
benchmarks/RESULTS.md).

``background=True`` (live sources): a due face that already has labels is classified on a helper thread
while this frame goes on with its earlier labels; the new labels are used from the frame after they are
ready. Why: with ResNet-50 on two cores one classification (≈ 45 ms) outlasts a 25 fps frame interval, so
the frames behind it, which need no classification, waited and were dropped (20 % measured). Only new
faces are still classified before their frame goes on (a face is never shown without labels). While a
background classification runs, due faces keep their labels (``faces_deferred``). Files stay synchronous,
so their results do not depend on timing.

Example:
    >>> reuse = LabelReuse(every=2)
    >>> reuse.due(track_id=3), reuse.due(track_id=None)  # a track never classified, a face without a track
    (True, True)
    >>> faces = reuse.classify(predictor, rgb, dets, cam=False, timings={}, index=0)  # doctest: +SKIP
    >>> s = run_video(predictor, "clip.mp4", "out/clip", classify_every="auto")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from eacfer.infer.protocols import FaceAnalyser
from eacfer.infer.results import FaceResult

log = logging.getLogger(__name__)

DEFAULT_CLASSIFY_EVERY = "auto"  # `eacfer video` and the app; the Python API's default is 1 (module docstring)
#: backbones whose classifier costs several times MobileNetV2's per face (ResNet-50: ≈ 45 vs 7 ms on 2 cores):
#: ``auto`` classifies their faces every 3rd frame, every other backbone's every 2nd
HEAVY_BACKBONES = frozenset({"resnet50_msceleb", "resnet50"})


def resolve_classify_every(value: int | str, backbone: str) -> int:
    """``--classify-every`` as a number: an integer ≥ 1 as given; ``"auto"`` → 3 for :data:`HEAVY_BACKBONES`,
    else 2 (labels at most 80 or 40 ms old at 25 fps).

    Example:
        >>> resolve_classify_every("auto", "mobilenet_v2"), resolve_classify_every("auto", "resnet50_msceleb")
        (2, 3)
        >>> resolve_classify_every("1", "resnet50_msceleb")
        1
    """
    if str(value) == "auto":
        return 3 if backbone in HEAVY_BACKBONES else 2
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"classify every must be an integer >= 1 or 'auto', got {value!r}") from None
    if n < 1:
        raise ValueError(f"classify every must be >= 1, got {n}")
    return n


@dataclass
class _Entry:
    face: FaceResult
    count: int  # analysed-frame count when it was classified


class LabelReuse:
    """Per-track label cache for one stream (use from one thread; :meth:`reset` for a new source).

    Args:
        every: classify each tracked face every N-th analysed frame (1 = always).
        background: classify due faces that already have labels on a helper thread (module docstring);
            call :meth:`close` before closing the predictor.
    """

    def __init__(self, every: int = 1, background: bool = False) -> None:
        if str(every) == "auto":
            raise ValueError("LabelReuse needs a number; resolve 'auto' with resolve_classify_every(value, backbone)")
        self.every = resolve_classify_every(every, "")
        self.background = bool(background) and self.every > 1
        self._cache: dict[int, _Entry] = {}
        self._count = 0  # analysed frames so far
        self._lock = threading.Lock()  # the cache and counters, shared with the background thread
        self._job: threading.Thread | None = None
        self._generation = 0  # bumped by reset(): a background result for an older source is dropped
        self._last_error = ""
        self.classified = 0  # faces run through the classifier
        self.carried = 0  # faces given an earlier frame's labels
        self.deferred = 0  # of those, due faces that waited for a running background classification

    def due(self, track_id: int | None, count: int | None = None) -> bool:
        """Must this track be classified on analysed frame ``count`` (default: the current one)?"""
        count = self._count if count is None else int(count)
        if track_id is None or self.every == 1:
            return True
        entry = self._cache.get(int(track_id))
        if entry is None or count - entry.count >= self.every:
            return True
        return (count + int(track_id)) % self.every == 0

    def classify(self, predictor: FaceAnalyser, rgb: np.ndarray, dets: list[Any], cam: bool, timings: dict[str, float],
                 index: int | None = None) -> list[FaceResult]:
        """This frame's faces, in ``dets`` order: the due ones classified (one batch), the others carried over.

        ``index`` (the frame number) is recorded as ``label_frame`` of the faces classified now.
        """
        h, w = rgb.shape[:2]
        with self._lock:
            due = [i for i, d in enumerate(dets) if self.due(getattr(d, "track_id", None))]
            if self.background:  # faces with labels go to the helper thread; new faces are classified now
                later = [i for i in due if getattr(dets[i], "track_id", None) is not None
                         and int(dets[i].track_id) in self._cache]
                due = [i for i in due if i not in later]
                if later and (self._job is None or not self._job.is_alive()):
                    self._start_job(predictor, rgb, [dets[i] for i in later], cam, index)
                else:
                    self.deferred += len(later)  # a classification is still running: they wait for the next
        fresh = predictor.classify_faces(rgb, [dets[i] for i in due], cam, timings)
        out: list[FaceResult | None] = [None] * len(dets)
        with self._lock:
            for i, face in zip(due, fresh, strict=True):
                face.label_frame = index
                out[i] = face
                if face.track_id is not None:
                    self._cache[int(face.track_id)] = _Entry(face, self._count)
            for i, d in enumerate(dets):
                if out[i] is None:
                    out[i] = predictor.carry_labels(d, self._cache[int(d.track_id)].face, cam, w, h)
            # only tracks seen in this frame stay cached: memory is bounded by the faces of one frame, and a
            # track that reappears after a miss is classified again
            seen = {int(d.track_id) for d in dets if getattr(d, "track_id", None) is not None}
            self._cache = {k: v for k, v in self._cache.items() if k in seen}
            self.classified += len(due)
            self.carried += len(dets) - len(due)
            self._count += 1
        return [f for f in out if f is not None]

    def _start_job(self, predictor: FaceAnalyser, rgb: np.ndarray, dets: list[Any], cam: bool, index: int | None) -> None:
        """Classify ``dets`` on a helper thread (caller holds the lock); the results replace the cached labels
        of their tracks when done, counted as of this frame (so they are due again ``every`` frames later)."""
        count, generation = self._count, self._generation
        image = rgb.copy()  # the frame goes on to be drawn on; the helper reads its own copy

        def run() -> None:
            try:
                faces = predictor.classify_faces(image, dets, cam, {})
            except Exception as e:  # noqa: BLE001 - the frames go on with their earlier labels; say it once
                msg = f"background classification failed: {type(e).__name__}: {e}"
                if msg != self._last_error:
                    log.warning("%s", msg)
                    self._last_error = msg
                return
            with self._lock:
                if generation != self._generation:
                    return  # reset meanwhile: a new source
                for face in faces:
                    face.label_frame = index
                    tid = face.track_id
                    if tid is not None and int(tid) in self._cache:  # still tracked
                        self._cache[int(tid)] = _Entry(face, count)
                self.classified += len(faces)

        self._job = threading.Thread(target=run, name="eacfer-labels", daemon=True)
        self._job.start()

    def close(self) -> None:
        """Wait for a running background classification (before the predictor is closed)."""
        job = self._job
        if job is not None:
            job.join()

    def reset(self) -> None:
        """Forget every track (a new source or a seek)."""
        with self._lock:
            self._cache.clear()
            self._count = 0
            self._generation += 1

    def stats(self) -> dict[str, int | bool]:
        """``{"classify_every", "faces_classified", "faces_carried", "background", "faces_deferred"}`` for
        summary.json: faces run through the classifier (in the background too), faces shown with an earlier
        frame's labels, and of those the due ones that waited for a running background classification."""
        with self._lock:
            return {"classify_every": self.every, "faces_classified": self.classified,
                    "faces_carried": self.carried, "background": self.background, "faces_deferred": self.deferred}
