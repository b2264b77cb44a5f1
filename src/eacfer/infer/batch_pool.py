"""Throughput mode of ``eacfer predict``: decode + detect + align in worker processes, classify in batches.

Decoding a photo and running the face detector are per-image and single-threaded, so they spread over
worker processes; the classifier is fastest on many faces at once, so the main process gathers the crops of
several images (up to ``batch_size`` faces) and classifies them in one call. The crops are made by the same
code as :meth:`Predictor.predict` (the predictor's own detector and crop methods, in each worker), so the
rows are the ones the one-process path gives (up to the last digit of a probability: batched inference may
round differently).

Workers are started with ``spawn`` (never ``fork`` after onnxruntime/MediaPipe created threads) and ignore
Ctrl-C, which the main process handles between files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class WorkerError(ValueError):
    """A file a worker could not read (the message is the row's ``error``)."""


class _InfoOnly:
    """Stands in for the classifier inside a worker: the predictor only needs the model's metadata there."""

    backend = "none"
    has_cams = False

    def __init__(self, info: Any):
        self.info = info


# The one predictor of a worker process, made by the pool initializer (per-process state, never shared).
_WORKER: dict[str, Any] = {}


def _init_worker(info: Any, detector: str, mode: str, threshold: float, max_faces: int | None) -> None:
    import signal

    from eacfer.infer.predictor import Predictor

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides what Ctrl-C does
    _WORKER["p"] = Predictor(_InfoOnly(info), detector=detector, detector_mode=mode,  # type: ignore[arg-type]
                             score_threshold=threshold, max_faces=max_faces)


def _detect_one(item: tuple[str, bool]) -> dict[str, Any]:
    """Decode, detect and crop one file (in a worker)."""
    from eacfer.data.imageio import load_image
    from eacfer.infer.batch_ledger import error_text
    from eacfer.infer.detect import Detection

    path, keep = item
    p = _WORKER["p"]
    t: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        rgb = load_image(Path(path))
        t["decode"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        h, w = rgb.shape[:2]
        if p.detector_name == "none":  # as Predictor._analyse: the whole image is the face
            dets = [Detection((0.0, 0.0, float(w), float(h)), 1.0, None)]
        else:
            dets = p._detector_for("image").detect(rgb)
            if p.max_faces is not None:
                dets = dets[: p.max_faces]
        t["detect"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        crops = p._crops(rgb, dets) if dets else None
        t["align"] = (time.perf_counter() - t0) * 1000
    except Exception as e:  # the file becomes an error row, as in the one-process path
        return {"error": error_text(path, e)}
    return {"dets": [(tuple(d.box), float(d.score), d.keypoints) for d in dets], "crops": crops,
            "size": (int(w), int(h)), "image": rgb if keep else None, "timings": t}


def _faces(predictor: Any, dets: list[Any], probs: np.ndarray, cams: np.ndarray | None) -> list[Any]:
    """FaceResults as :meth:`Predictor._analyse` builds them."""
    from eacfer.infer.detect import Detection
    from eacfer.infer.results import FaceResult

    names = predictor.class_names
    size = predictor.input_size
    out = []
    for i, (box, score, kps) in enumerate(dets):
        k = int(np.argmax(probs[i]))
        affine = None
        if cams is not None:
            from eacfer.infer.align import crop_transform

            affine = crop_transform(Detection(box, score, kps), size)
        out.append(FaceResult(box=tuple(float(v) for v in box), score=float(score),  # type: ignore[arg-type]
                              keypoints=None if kps is None else np.asarray(kps, np.float32), emotion=names[k],
                              class_index=k, probabilities=probs[i], class_names=names,
                              cam=None if cams is None else cams[i, k], crop_affine=affine, crop_size=size))
    return out


def _classify(predictor: Any, pending: list[tuple[str, dict[str, Any]]], cam: bool
              ) -> Iterator[tuple[Any, BaseException | None, dict[str, float]]]:
    from eacfer.infer.results import FrameResult

    crops = [d["crops"] for _, d in pending if d.get("crops") is not None]
    n_img = sum("error" not in d for _, d in pending)
    probs = cams = None
    ms = 0.0
    if crops:
        t0 = time.perf_counter()
        probs, cams = predictor.classifier.classify(np.ascontiguousarray(np.concatenate(crops)), cams=cam)
        ms = (time.perf_counter() - t0) * 1000
    at = 0
    for path, d in pending:
        if "error" in d:
            yield None, WorkerError(d["error"]), {}
            continue
        n = len(d["dets"])
        faces = [] if n == 0 else _faces(predictor, d["dets"], probs[at:at + n],  # type: ignore[index]
                                         None if cams is None else cams[at:at + n])
        at += n
        timings = {**d["timings"], "classify": ms / max(1, n_img)}
        yield FrameResult(faces, d["size"], timings, image=d["image"], source=path), None, timings


class _Pooled:
    """Iterator of ``(result, failure, stage_ms)`` in input order; ``close()`` stops the workers."""

    def __init__(self, predictor: Any, files: list[str], workers: int, batch_size: int, cam: bool, keep: bool):
        import multiprocessing as mp

        info = predictor.classifier.info
        ctx = mp.get_context("spawn")
        self._pool = ctx.Pool(workers, initializer=_init_worker,
                              initargs=(info, predictor.detector_name, predictor.detector_mode,
                                        predictor.score_threshold, predictor.max_faces))
        self._gen = self._run(predictor, files, batch_size, cam, keep)

    def _run(self, predictor: Any, files: list[str], batch_size: int, cam: bool, keep: bool
             ) -> Iterator[tuple[Any, BaseException | None, dict[str, float]]]:
        it = self._pool.imap(_detect_one, [(f, keep) for f in files], chunksize=1)
        pending: list[tuple[str, dict[str, Any]]] = []
        faces = 0
        for path, d in zip(files, it, strict=True):
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


def pooled(predictor: Any, todo: list[tuple[Path, Path]], workers: int, batch_size: int = 32, cam: bool = False,
           keep_images: bool = False) -> _Pooled:
    """Results for ``todo`` (``(file, root)`` pairs) from ``workers`` processes, faces classified in batches.

    Example:
        >>> for r, failure, ms in pooled(predictor, todo, workers=2):  # doctest: +SKIP
        ...     print(r.source if r else failure)
    """
    return _Pooled(predictor, [str(f) for f, _ in todo], workers, batch_size, cam, keep_images)
