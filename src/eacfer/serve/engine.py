"""The bounded worker pool behind ``eacfer serve``: a bounded queue, worker threads that each own a predictor,
and request batching.

Why threads and one predictor per worker: the detectors (MediaPipe/LiteRT) are not safe to share between
threads, while onnxruntime and OpenCV release the GIL, so a worker thread per core is what the CPU can use.
Why a bounded queue: a request that would wait behind more than ``queue_size`` others is refused at once
(:class:`Busy`, HTTP 503 with ``Retry-After``) instead of piling up memory and latency.

**Batching**: a worker takes the job at the head of the queue and then every job already waiting, up to
``max_batch``; it detects the faces of each image and classifies all their faces in one classifier run
(:meth:`eacfer.infer.predictor.Predictor.classify_many`). ``max_batch=1`` switches it off. Nothing waits
for a batch to fill: a lone request is served at once.

WebSocket frames are jobs too (``session`` set): they run :meth:`eacfer.infer.stream.live.LiveSession.process`
(tracking and label carry-over), one at a time per session.

Example:
    >>> pool = InferencePool(lambda: Predictor.from_checkpoint("model.onnx"), workers=1)  # doctest: +SKIP
    >>> result = pool.submit(Job(rgb)).result()                                           # doctest: +SKIP
    >>> pool.close()                                                                      # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eacfer.infer.protocols import FaceAnalyser

log = logging.getLogger(__name__)

_STOP = object()


class Busy(Exception):
    """The queue is full: the request is refused (HTTP 503 with ``Retry-After``)."""


@dataclass
class Job:
    """One image to analyse (``session`` set: one frame of a live stream)."""

    rgb: np.ndarray
    cam: bool = False
    max_faces: int | None = None
    mode: str | None = None  # MediaPipe model(s) for this image; None: the predictor's
    session: Any = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    queued_at: float = field(default_factory=time.perf_counter)


class InferencePool:
    """``workers`` threads, each with its own predictor from ``make_predictor``, fed by one bounded queue.

    Args:
        make_predictor: builds one predictor (called ``workers`` times, on the caller's thread).
        workers: worker threads (each classifies one batch at a time).
        queue_size: jobs that may wait; one more is refused with :class:`Busy`.
        max_batch: most images classified in one run (1 = no request batching).
    """

    def __init__(self, make_predictor: Callable[[], Any], workers: int = 1, queue_size: int = 16,
                 max_batch: int = 8) -> None:
        if workers < 1 or queue_size < 1 or max_batch < 1:
            raise ValueError("workers, queue size and max batch must be >= 1")
        self.max_batch = int(max_batch)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=int(queue_size))
        self.predictors: list[Any] = []
        try:
            for _ in range(workers):
                self.predictors.append(make_predictor())
        except BaseException:
            for p in self.predictors:
                p.close()
            raise
        self.batches = 0  # classifier runs
        self.images = 0  # images analysed
        self._threads = [threading.Thread(target=self._loop, args=(p,), name=f"eacfer-serve-{i}", daemon=True)
                         for i, p in enumerate(self.predictors)]
        for t in self._threads:
            t.start()

    @property
    def predictor(self) -> Any:
        """The first worker's predictor (model card, class names, live sessions' classifier)."""
        return self.predictors[0]

    def depth(self) -> int:
        """Jobs waiting now."""
        return self._queue.qsize()

    def submit(self, job: Job) -> concurrent.futures.Future:
        """Queue ``job``; raises :class:`Busy` when the queue is full. The future holds a FrameResult."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Busy(f"{self._queue.maxsize} requests are already waiting") from None
        return job.future

    def _loop(self, predictor: FaceAnalyser) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            batch = [job]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._run(predictor, batch)
            if stop:
                return

    def _run(self, predictor: FaceAnalyser, batch: list[Job]) -> None:
        from eacfer.infer.results import FrameResult

        started = time.perf_counter()
        images: list[tuple[Job, list[Any], dict[str, float]]] = []
        for job in batch:
            if not job.future.set_running_or_notify_cancel():
                continue
            timings = {"queue": (started - job.queued_at) * 1000.0}
            try:
                if job.session is not None:
                    r = job.session.process(job.rgb, max_faces=job.max_faces)
                    r.timings.update(timings)
                    job.future.set_result(r)
                    continue
                t0 = time.perf_counter()
                dets = predictor.detect_faces(job.rgb, "image", job.mode)
                timings["detect"] = (time.perf_counter() - t0) * 1000.0
                images.append((job, dets[: job.max_faces] if job.max_faces is not None else dets, timings))
            except BaseException as e:  # noqa: BLE001 - the request gets the error, the worker goes on
                job.future.set_exception(e)
        for cam in (False, True):  # one classifier run per CAM setting (CAMs cost an extra output)
            group = [it for it in images if it[0].cam == cam]
            if not group:
                continue
            shared: dict[str, float] = {}
            try:
                faces = predictor.classify_many([(j.rgb, d) for j, d, _ in group], cam, shared)
            except BaseException as e:  # noqa: BLE001
                for j, _, _ in group:
                    j.future.set_exception(e)
                continue
            self.batches += 1
            self.images += len(group)
            for (j, _, t), f in zip(group, faces, strict=True):
                t.update(shared)
                t["batch_images"] = float(len(group))
                t["total"] = (time.perf_counter() - j.queued_at) * 1000.0
                j.future.set_result(FrameResult(f, (int(j.rgb.shape[1]), int(j.rgb.shape[0])), t))

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs, stop the workers and close the predictors."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for t in self._threads:
            t.join(timeout)
        for p in self.predictors:
            p.close()
