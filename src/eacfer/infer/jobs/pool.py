"""Throughput mode of ``eacfer predict``: decode + detect + align in worker processes, classify in batches.

Decoding a photo and running the face detector are per-image and single-threaded, so they spread over
worker processes; the classifier is fastest on many faces at once, so the main process gathers the crops of
several images (up to ``batch_size`` faces) and classifies them in one call. The workers get the predictor's
:class:`~eacfer.infer.detect.policy.DetectorPolicy` and :class:`~eacfer.infer.recipe.FaceRecipe` and call
the functions :meth:`Predictor.predict` calls (:meth:`DetectorPolicy.detect`,
:meth:`FaceRecipe.inputs`, :func:`eacfer.infer.recipe.face_results`), so the rows are the ones the one-process
path gives (up to the last digit of a probability: batched inference may round differently). Workers never
load the model (nor torch), so they start in about a second.

Workers are started with ``spawn`` (never ``fork`` after onnxruntime/MediaPipe created threads) and ignore
Ctrl-C, which the main process handles between files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.infer.protocols import FaceAnalyser

log = logging.getLogger(__name__)


class WorkerError(ValueError):
    """A file a worker could not read (the message is the row's ``error``)."""


# The detector of a worker process, made by the pool initializer (per-process state, never shared).
_WORKER: dict[str, Any] = {}


def _init_worker(policy: Any, recipe: Any) -> None:
    """Pool initializer: the worker's detector, made by the predictor's :class:`DetectorPolicy` for photos,
    and the predictor's :class:`FaceRecipe` (both pickled as they are: one description of each, no copies)."""
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides what Ctrl-C does
    cv2.setNumThreads(1)  # parallelism comes from the worker processes; OpenCV's own threads would oversubscribe
    det = None if policy.name == "none" else policy.create("image")
    _WORKER.update(det=det, policy=policy, recipe=recipe)


def _detect_one(item: tuple[str, bool]) -> dict[str, Any]:
    """Decode, detect and crop one file (in a worker)."""
    from eacfer.data.imageio import load_image
    from eacfer.infer.jobs.ledger import error_text

    path, keep = item
    w = _WORKER
    t: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        rgb = load_image(Path(path))
        t["decode"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        dets = w["policy"].detect(w["det"], rgb)
        t["detect"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        crops = w["recipe"].inputs(rgb, dets) if dets else None
        t["align"] = (time.perf_counter() - t0) * 1000
    except Exception as e:  # the file becomes an error row, as in the one-process path
        return {"error": error_text(path, e)}
    from eacfer.infer.detect.fallback import detection_note

    h, wd = rgb.shape[:2]
    policy = w["policy"]
    note = None if policy.name == "none" else detection_note(w["det"], len(dets), policy.name)
    return {"dets": dets, "crops": crops, "size": (int(wd), int(h)), "image": rgb if keep else None,
            "timings": t, "note": note}


def _classify(predictor: FaceAnalyser, pending: list[tuple[str, dict[str, Any]]], cam: bool
              ) -> Iterator[tuple[Any, BaseException | None, dict[str, float]]]:
    from eacfer.infer.recipe import face_results
    from eacfer.infer.results import FrameResult

    crops = [d["crops"] for _, d in pending if d.get("crops") is not None]
    n_img = sum("error" not in d for _, d in pending)
    probs = cams = None
    ms = 0.0
    if crops:
        t0 = time.perf_counter()
        probs, cams = predictor.probabilities(np.concatenate(crops), cam)
        ms = (time.perf_counter() - t0) * 1000
    recipe = predictor.recipe
    at = 0
    for path, d in pending:
        if "error" in d:
            yield None, WorkerError(d["error"]), {}
            continue
        n = len(d["dets"])
        faces = [] if n == 0 else face_results(d["dets"], probs[at:at + n],  # type: ignore[index]
                                               None if cams is None else cams[at:at + n], recipe,
                                               predictor.class_names, predictor.min_confidence, d["size"])
        at += n
        timings = {**d["timings"], "classify": ms / max(1, n_img)}
        yield FrameResult(faces, d["size"], timings, image=d["image"], source=path, note=d.get("note")), None, timings


class _Pooled:
    """Iterator of ``(result, failure, stage_ms)`` in input order; ``close()`` stops the workers."""

    def __init__(self, predictor: FaceAnalyser, files: list[str], workers: int, batch_size: int, cam: bool, keep: bool):
        import multiprocessing as mp

        self.started = time.perf_counter()
        self.startup_s: float | None = None  # pool start → first file back (worker start-up, mostly imports)
        ctx = mp.get_context("spawn")
        self._pool = ctx.Pool(workers, initializer=_init_worker,
                              initargs=(predictor.detector_policy, predictor.recipe))
        self._gen = self._run(predictor, files, batch_size, cam, keep)

    def _run(self, predictor: FaceAnalyser, files: list[str], batch_size: int, cam: bool, keep: bool
             ) -> Generator[tuple[Any, BaseException | None, dict[str, float]], None, None]:
        it = self._pool.imap(_detect_one, [(f, keep) for f in files], chunksize=1)
        pending: list[tuple[str, dict[str, Any]]] = []
        faces = 0
        for path, d in zip(files, it, strict=True):
            if self.startup_s is None:
                self.startup_s = round(time.perf_counter() - self.started, 3)
            pending.append((path, d))
            faces += len(d.get("dets") or ())
            if faces >= batch_size or len(pending) >= batch_size:
                yield from _classify(predictor, pending, cam)
                pending, faces = [], 0
        yield from _classify(predictor, pending, cam)

    def __iter__(self) -> _Pooled:
        return self

    def __next__(self) -> tuple[Any, BaseException | None, dict[str, float]]:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
        self._pool.terminate()
        self._pool.join()


def pooled(predictor: FaceAnalyser, todo: list[tuple[Path, Path]], workers: int, batch_size: int = 32, cam: bool = False,
           keep_images: bool = False) -> _Pooled:
    """Results for ``todo`` (``(file, root)`` pairs) from ``workers`` processes, faces classified in batches.

    Example:
        >>> for r, failure, ms in pooled(predictor, todo, workers=2):  # doctest: +SKIP
        ...     print(r.source if r else failure)
    """
    return _Pooled(predictor, [str(f) for f, _ in todo], workers, batch_size, cam, keep_images)
