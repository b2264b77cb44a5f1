"""One live stream whose frames are pushed one at a time (``eacfer serve``'s WebSocket, any frame-by-frame
caller): the same detection, tracking and label carry-over as ``eacfer video`` on a camera.

``eacfer video`` pulls frames from a source through :mod:`eacfer.infer.stream.pipeline`; a web client pushes them
instead, so :class:`LiveSession` runs the same three parts on each pushed frame:

* detection with the tracking video face finder for live sources (:func:`eacfer.infer.detect.finder.make_video_finder`
  with ``live=True``; one per session, since it keeps tracks) — or, for other detector settings, the
  predictor's detector for ``"stream"``;
* :class:`eacfer.infer.stream.reuse.LabelReuse` (classify each tracked face every N-th frame, carry labels between;
  synchronous here, so a result never depends on a helper thread's timing);
* :class:`eacfer.infer.stream.tracking.IoUTracker` with the finder's ids kept and the probabilities smoothed.

Many sessions may share one predictor as long as each session's frames are processed one after another
(the classifier is shared; each session's finder and tracks are its own).

Example:
    >>> with LiveSession(predictor, classify_every="auto") as s:  # doctest: +SKIP
    ...     r = s.process(rgb)
    ...     [(f.track_id, f.emotion) for f in r.faces]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from eacfer.infer.protocols import FaceAnalyser
from eacfer.infer.results import FrameResult


class LiveSession:
    """Frame-by-frame detection + tracking + label carry-over for one live stream.

    Args:
        predictor: a :class:`eacfer.infer.predictor.Predictor` (shared; not closed here).
        classify_every: ``--classify-every`` of ``eacfer video`` (``"auto"`` or an integer ≥ 1).
        cam: attention maps for the faces classified.
        smoothing: the tracker's probability smoothing (``eacfer video --smoothing``).
    """

    def __init__(self, predictor: FaceAnalyser, classify_every: int | str = "auto", cam: bool = False,
                 smoothing: float = 0.5) -> None:
        from eacfer.infer.stream.reuse import LabelReuse, resolve_classify_every
        from eacfer.infer.stream.tracking import IoUTracker

        self.predictor = predictor
        self.cam = bool(cam)
        backbone = str(predictor.classifier.info.backbone)
        self.reuse = LabelReuse(resolve_classify_every(classify_every, backbone), background=False)
        self.tracker = IoUTracker(smoothing=smoothing, keep_given_ids=True)
        self._finder: Any = None
        if predictor.detector_mode_for("stream") == "finder":
            from eacfer.infer.detect.finder import make_video_finder

            self._finder = make_video_finder(live=True, score_threshold=predictor.score_threshold, small_face=0.0)
        self.frames = 0

    def process(self, rgb: np.ndarray, max_faces: int | None = None) -> FrameResult:
        """Detect, classify (or carry over) and track the faces of the next frame (H×W×3 uint8 RGB).

        Example:
            >>> r = session.process(rgb)  # doctest: +SKIP
        """
        timings: dict[str, float] = {}
        t_all = t0 = time.perf_counter()
        dets = self._finder.detect(rgb) if self._finder is not None else self.predictor.detect_faces(rgb, "stream")
        if max_faces is not None:
            dets = dets[:max_faces]
        timings["detect"] = (time.perf_counter() - t0) * 1000.0
        index = self.frames
        faces = self.reuse.classify(self.predictor, rgb, dets, self.cam, timings, index)
        self.tracker.update(faces, index)
        self.frames += 1
        timings["total"] = (time.perf_counter() - t_all) * 1000.0
        return FrameResult(faces, (int(rgb.shape[1]), int(rgb.shape[0])), timings, index=index)

    def stats(self) -> dict[str, Any]:
        """Frames processed, tracks and the label counters (:meth:`LabelReuse.stats`)."""
        return {"frames": self.frames, **self.tracker.summary(), "labels": self.reuse.stats()}

    def close(self) -> None:
        """Release this session's face finder (the predictor stays open)."""
        self.reuse.close()
        if self._finder is not None:
            self._finder.close()
            self._finder = None

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
