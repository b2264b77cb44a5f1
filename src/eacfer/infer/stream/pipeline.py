"""Frames of a video → :class:`FrameResult` s, as a pipeline of stages on threads (or one after another).

``ThreadedFrames`` runs **decode → detect → classify** on three threads joined by bounded queues; the
caller (``eacfer video``) consumes results in frame order and hands drawing and encoding to a fourth
thread (:class:`eacfer.infer.jobs.writers.BackgroundWriter`). OpenCV, MediaPipe and onnxruntime release the
GIL in their native code, so the stages really overlap on two cores. Every stage is one thread and every
queue is FIFO, so frame order is preserved by construction; threads block on their queues (no polling
loops that burn CPU; the 0.1 s timeouts only notice a stop request).

* **Files**: every frame goes through (a full queue makes the stage before it wait), so every input frame
  is written, in order.
* **Live sources** (cameras, stream URLs): every queue holds one frame, and a frame that arrives while the
  previous one still waits there replaces it; the replaced frame is **dropped** and counted (``dropped``),
  so the pipeline never falls behind the camera and no frame waits behind an older one.
* **Latency**: the age of a frame (from the moment it was read) when its labels reach the consumer; kept
  as percentiles in constant memory (:class:`LatencyStats`).
* ``SequentialFrames`` is the same work on the caller's thread, one frame after another (``--pipeline
  sequential``; the benchmark's baseline).

``classify_every=N`` classifies each tracked face every N-th analysed frame and carries its labels over
in between (:class:`eacfer.infer.stream.reuse.LabelReuse`); for live sources the faces that already have labels
are classified on a helper thread, so the frames behind them do not wait.

The detection stage is one object with a per-frame call (:class:`FrameDetector`); ``Predictor.frame_detector``
builds it, so a stateful video face finder (tracks, regions of interest, periodic full scans) plugs in there.

Example:
    >>> with ThreadedFrames(predictor, open_source("clip.mp4")) as frames:  # doctest: +SKIP
    ...     for r in frames:
    ...         print(r.index, len(r.faces), r.latency_ms)
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eacfer.infer.protocols import FaceAnalyser, FrameDetector
from eacfer.infer.results import FrameResult

log = logging.getLogger(__name__)

PIPELINES = ("threaded", "sequential")


def check_stream_args(every: int, max_frames: int | None, pipeline: str) -> None:
    """Refuse stream settings no pipeline can run (checked once, before a source is opened).

    Example:
        >>> check_stream_args(1, None, "threaded")
        >>> check_stream_args(0, None, "threaded")
        Traceback (most recent call last):
        ValueError: every must be >= 1, got 0
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; choose from {', '.join(PIPELINES)}")
STAGES = ("decode", "detect", "classify")
_STOP = object()  # end of stream, passed down the queues
_POLL_S = 0.1  # how often a waiting thread looks at the stop flag (it sleeps in between)


class LatencyStats:
    """Percentiles of per-frame latencies in constant memory: 0.1 ms bins up to 10 s (the max is exact).

    Example:
        >>> s = LatencyStats()
        >>> for ms in (10, 20, 30, 40): s.add(ms)
        >>> s.summary()["p50"], s.summary()["max"]
        (20.0, 40.0)
    """

    BIN_MS = 0.1
    N_BINS = 100_000

    def __init__(self) -> None:
        self._hist = np.zeros(self.N_BINS + 1, np.int64)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, ms: float) -> None:
        ms = max(0.0, float(ms))
        self._hist[min(int(ms / self.BIN_MS), self.N_BINS)] += 1
        self.count += 1
        self.total += ms
        self.max = max(self.max, ms)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (nearest rank, to 0.1 ms), ``None`` before the first value."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        i = int(np.searchsorted(np.cumsum(self._hist), rank))
        return round(min(self.max, i * self.BIN_MS), 1)

    def summary(self) -> dict[str, float | int]:
        """``{count, mean, p50, p90, p95, p99, max}`` in ms (empty before the first value)."""
        if self.count == 0:
            return {}
        out: dict[str, float | int] = {"count": self.count, "mean": round(self.total / self.count, 2)}
        for q in (50, 90, 95, 99):
            out[f"p{q}"] = self.percentile(q)  # type: ignore[assignment]
        out["max"] = round(self.max, 1)
        return out


@dataclass
class _Work:
    """One frame travelling through the stages."""

    index: int
    time_s: float
    rgb: np.ndarray
    read_at: float  # perf_counter when the frame arrived from the source
    processed: bool
    timings: dict[str, float] = field(default_factory=dict)
    dets: list[Any] = field(default_factory=list)


class _Frames:
    """What both pipelines share: the stage functions, counters and statistics."""

    name = "?"

    def __init__(self, predictor: FaceAnalyser, src: Any, every: int = 1, max_frames: int | None = None,
                 cam: bool = False, detector: FrameDetector | None = None, classify_every: int | str = 1):
        from eacfer.infer.stream.reuse import LabelReuse, resolve_classify_every

        check_stream_args(every, max_frames, self.name)
        self.predictor, self.src, self.every, self.max_frames, self.cam = predictor, src, every, max_frames, cam
        kind = "stream" if src.live else "video"
        self._owns_detector = detector is None
        self.detector = detector if detector is not None else predictor.frame_detector(kind)
        self.detector.reset()  # a new source: no tracks from an earlier one (ids restart at 1)
        # "auto" depends on the model's backbone (stand-in predictors in tests may have no classifier)
        backbone = str(getattr(getattr(getattr(predictor, "classifier", None), "info", None), "backbone", ""))
        # used by the classify stage; live sources classify known faces in the background (reuse.py: why)
        self.reuse = LabelReuse(resolve_classify_every(classify_every, backbone), background=bool(src.live))
        self.latency = LatencyStats()
        self.dropped = 0  # live frames replaced by newer ones before analysis
        self.delivered = 0
        self.busy = dict.fromkeys(STAGES, 0.0)  # seconds each stage spent working
        self.max_in_flight = 0  # most frames read but not yet delivered, at any time (memory bound)
        self._in_flight = 0
        self._lock = threading.Lock()
        self.t_start = time.perf_counter()
        self.t_end: float | None = None

    # -- stages (each runs on one thread) ------------------------------------------------------
    def _decode(self, item: tuple[int, float, np.ndarray], t0: float) -> _Work:
        import cv2

        index, time_s, frame = item
        read_at = time.perf_counter()
        if self.src.live:
            t0 = read_at  # a camera's read waits for the next frame: that is not decoding work
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        w = _Work(index, time_s, rgb, read_at, index % self.every == 0)
        w.timings["decode"] = (time.perf_counter() - t0) * 1000.0
        self.busy["decode"] += w.timings["decode"] / 1000.0
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        return w

    def _detect(self, w: _Work) -> _Work:
        if w.processed:
            t0 = time.perf_counter()
            w.dets = self.detector.detect(w.rgb, w.index)
            w.timings["detect"] = (time.perf_counter() - t0) * 1000.0
            self.busy["detect"] += w.timings["detect"] / 1000.0
        return w

    def _classify(self, w: _Work) -> FrameResult:
        faces: list[Any] = []
        if w.processed:
            t0 = time.perf_counter()
            faces = self.reuse.classify(self.predictor, w.rgb, w.dets, self.cam, w.timings, w.index)
            self.busy["classify"] += time.perf_counter() - t0
        w.timings["total"] = sum(v for k, v in w.timings.items() if k in STAGES or k == "align")
        return FrameResult(faces, (int(w.rgb.shape[1]), int(w.rgb.shape[0])), w.timings, index=w.index,
                           time_s=w.time_s, image=w.rgb, source=self.src.description, processed=w.processed,
                           read_at=w.read_at)

    def _deliver(self, r: FrameResult) -> FrameResult:
        r.latency_ms = (time.perf_counter() - float(r.read_at or 0.0)) * 1000.0
        if r.processed:
            self.latency.add(r.latency_ms)
        with self._lock:
            self._in_flight -= 1
        self.delivered += 1
        return r

    # -- statistics ------------------------------------------------------------------------------
    @property
    def frames_read(self) -> int:
        return int(self.src.frames_read)

    def stats(self) -> dict[str, Any]:
        """Pipeline statistics for summary.json: name, dropped frames, latency, stage utilisation."""
        wall = (self.t_end or time.perf_counter()) - self.t_start
        util = {k: round(v / wall, 3) for k, v in self.busy.items()} if wall > 0 else {}
        return {"pipeline": self.name, "frames_read": self.frames_read, "dropped_frames": self.dropped,
                "latency_ms": self.latency.summary(), "stage_utilisation": util,
                "max_frames_in_flight": self.max_in_flight, "detection": self.detector.settings(),
                "labels": self.reuse.stats()}

    def close(self) -> None:
        if self.t_end is None:
            self.t_end = time.perf_counter()
        self.reuse.close()  # a background classification must end before anyone closes the predictor
        self._release_detector()

    def _release_detector(self) -> None:
        """Close a detection stage this pipeline made (call only once no stage thread uses it)."""
        if self._owns_detector and hasattr(self.detector, "close"):
            self._owns_detector = False
            self.detector.close()

    def __enter__(self) -> _Frames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SequentialFrames(_Frames):
    """All stages on the caller's thread, one frame after another (the pre-pipeline behaviour)."""

    name = "sequential"

    def __iter__(self) -> Iterator[FrameResult]:
        it = iter(self.src)
        try:
            while self.max_frames is None or self.src.frames_read < self.max_frames:
                t0 = time.perf_counter()
                item = next(it, None)
                if item is None:
                    break
                yield self._deliver(self._classify(self._detect(self._decode(item, t0))))
        finally:
            self.close()


class ThreadedFrames(_Frames):
    """decode, detect and classify on three threads with bounded queues (see the module docstring).

    Args:
        queue_size: capacity of each queue between stages for files (live sources use 1, so a frame
            waits behind at most one other at each stage).
        drop: for live sources, replace a waiting frame by a newer one (default); ``False`` queues them.
    """

    name = "threaded"

    def __init__(self, predictor: FaceAnalyser, src: Any, every: int = 1, max_frames: int | None = None, cam: bool = False,
                 detector: FrameDetector | None = None, queue_size: int = 2, drop: bool = True,
                 classify_every: int | str = 1):
        super().__init__(predictor, src, every, max_frames, cam, detector, classify_every)
        size = 1 if src.live else max(1, int(queue_size))
        self.drop = bool(drop) and bool(src.live)
        self.queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=size) for _ in range(3)]
        self._halt = threading.Event()
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []

    # -- queue helpers ------------------------------------------------------------------------------
    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        """Blocking put that gives up when the pipeline stops; False then."""
        while not self._halt.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self._halt.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _STOP

    def _offer_latest(self, q: queue.Queue[Any], item: Any) -> None:
        """Live sources: put ``item``, replacing (dropping) a frame still waiting there. Only for a queue whose
        single producer is the calling thread (each stage's output queue)."""
        try:
            q.put_nowait(item)
            return
        except queue.Full:
            pass
        try:
            q.get_nowait()
            with self._lock:  # several stage threads drop frames
                self.dropped += 1
                self._in_flight -= 1
        except queue.Empty:
            pass
        q.put_nowait(item)  # only this thread puts into this queue, so there is room now

    def _fail(self, e: BaseException) -> None:
        if self._error is None:
            self._error = e

    # -- threads ----------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        q = self.queues[0]
        try:
            it = iter(self.src)
            while not self._halt.is_set() and (self.max_frames is None or self.src.frames_read < self.max_frames):
                t0 = time.perf_counter()
                item = next(it, None)
                if item is None:
                    break
                w = self._decode(item, t0)
                if self.drop:
                    self._offer_latest(q, w)
                elif not self._put(q, w):
                    break
        except BaseException as e:  # handed to the consumer, raised there
            self._fail(e)
        finally:
            self._put(q, _STOP)

    def _stage_loop(self, fn: Any, inq: queue.Queue[Any], outq: queue.Queue[Any]) -> None:
        # A failing stage stops here; the frames it finished before still flow down to the consumer, which
        # raises the error after them (so the outputs hold every frame before the failure).
        try:
            while True:
                item = self._get(inq)
                if item is _STOP:
                    break
                out = fn(item)
                if self.drop:
                    self._offer_latest(outq, out)  # live: never wait behind an older frame
                elif not self._put(outq, out):
                    return
        except BaseException as e:
            self._fail(e)
        finally:
            self._put(outq, _STOP)

    def start(self) -> None:
        if self._threads:
            return
        self.t_start = time.perf_counter()
        q0, q1, q2 = self.queues
        self._threads = [
            threading.Thread(target=self._read_loop, name="eacfer-decode", daemon=True),
            threading.Thread(target=self._stage_loop, args=(self._detect, q0, q1), name="eacfer-detect", daemon=True),
            threading.Thread(target=self._stage_loop, args=(self._classify, q1, q2), name="eacfer-classify",
                             daemon=True),
        ]
        for t in self._threads:
            t.start()

    def __iter__(self) -> Iterator[FrameResult]:
        self.start()
        out = self.queues[2]
        try:
            while True:
                item = self._get(out)
                if item is _STOP:
                    break
                yield self._deliver(item)
            if self._error is not None:
                raise self._error
        finally:
            self.close()

    def close(self) -> None:
        """Stop every stage and wait for its thread (each finishes the call it is in)."""
        if self.t_end is None:
            self.t_end = time.perf_counter()
        self._halt.set()
        for t in self._threads:
            t.join(timeout=30)
            if t.is_alive():
                log.warning("pipeline thread %s did not stop within 30 s", t.name)
        self.reuse.close()
        if not any(t.is_alive() for t in self._threads):
            self._release_detector()


def open_frames(predictor: FaceAnalyser, src: Any, pipeline: str = "threaded", **kw: Any) -> _Frames:
    """The frame pipeline by name (``"threaded"`` or ``"sequential"``) over an opened source.

    Example:
        >>> frames = open_frames(predictor, open_source("clip.mp4"), "sequential")  # doctest: +SKIP
    """
    check_stream_args(kw.get("every", 1), kw.get("max_frames"), pipeline)
    if pipeline == "threaded":
        return ThreadedFrames(predictor, src, **kw)
    kw.pop("queue_size", None)
    kw.pop("drop", None)
    return SequentialFrames(predictor, src, **kw)
