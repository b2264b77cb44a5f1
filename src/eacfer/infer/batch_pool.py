"""Throughput mode of ``eacfer predict``: decode + detect + align in worker processes, classify in batches.

Decoding a photo and running the face detector are per-image and single-threaded, so they spread over
worker processes; the classifier is fastest on many faces at once, so the main process gathers the crops of
several images (up to ``batch_size`` faces) and classifies them in one call. The crops are made by the same
steps as :meth:`Predictor.predict` (same detector settings, same alignment and resize), so the rows are the
ones the one-process path gives (up to the last digit of a probability: batched inference may round
differently). Workers never import torch or the model, so they start in about a second.

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


def _init_worker(detector: str, mode: str, threshold: float, max_faces: int | None, input_size: int,
                 face_size: int | None, small_face: float = 48.0, margin: float | None = None,
                 shift: float = 0.0, fallback: str | None = None, align: str = "box") -> None:
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides what Ctrl-C does
    cv2.setNumThreads(1)  # parallelism comes from the worker processes; OpenCV's own threads would oversubscribe
    det = None
    if detector != "none":
        from eacfer.infer.detect import create_detector

        kw: dict[str, Any] = {"score_threshold": threshold}
        if detector == "mediapipe":  # as Predictor._detector_for("image"): both models (+ tiles) for photos
            kw.update(mode="both" if mode == "auto" else mode, small_face=small_face)
        det = create_detector(detector, fallback=fallback, **kw)
    _WORKER.update(det=det, none=detector == "none", detector=detector, max_faces=max_faces, size=input_size,
                   face=face_size, margin=margin, shift=shift, align=align)


def _crops(rgb: np.ndarray, dets: list[Any]) -> np.ndarray:
    """The model inputs of :meth:`Predictor._crops` (the same function, align.model_inputs), without importing
    the predictor, whose module pulls in torch: that import alone costs a worker several seconds of start-up
    on 2 cores. test_predict_jobs.test_throughput_mode_gives_the_same_rows keeps the two equal."""
    from eacfer.infer.align import model_inputs

    w = _WORKER
    return model_inputs(rgb, dets, w["size"], w["face"], w["margin"], whole_image=w["none"], shift=w["shift"],
                        align=w.get("align", "box"))


def _detect_one(item: tuple[str, bool]) -> dict[str, Any]:
    """Decode, detect and crop one file (in a worker)."""
    from eacfer.data.imageio import load_image
    from eacfer.infer.batch_ledger import error_text
    from eacfer.infer.detect import Detection

    path, keep = item
    w = _WORKER
    t: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        rgb = load_image(Path(path))
        t["decode"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        h, wd = rgb.shape[:2]
        if w["none"]:  # as Predictor._analyse: the whole image is the face
            dets = [Detection((0.0, 0.0, float(wd), float(h)), 1.0, None)]
        else:
            dets = w["det"].detect(rgb)
            if w["max_faces"] is not None:
                dets = dets[: w["max_faces"]]
        t["detect"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        crops = _crops(rgb, dets) if dets else None
        t["align"] = (time.perf_counter() - t0) * 1000
    except Exception as e:  # the file becomes an error row, as in the one-process path
        return {"error": error_text(path, e)}
    from eacfer.infer.detect.fallback import detection_note

    note = None if w["none"] else detection_note(w["det"], len(dets), w["detector"])
    return {"dets": [(tuple(d.box), float(d.score), d.keypoints) for d in dets], "crops": crops,
            "size": (int(wd), int(h)), "image": rgb if keep else None, "timings": t, "note": note}


def _faces(predictor: FaceAnalyser, dets: list[Any], probs: np.ndarray, cams: np.ndarray | None) -> list[Any]:
    """FaceResults as :meth:`Predictor._analyse` builds them."""
    from eacfer.infer.detect import Detection
    from eacfer.infer.results import FaceResult

    names = predictor.class_names
    size = predictor.input_size
    out = []
    for i, (box, score, kps) in enumerate(dets):
        k, emotion = predictor.label(probs[i])
        affine = None
        if cams is not None:
            from eacfer.infer.align import crop_transform

            affine = crop_transform(Detection(box, score, kps), size, predictor.face_margin, predictor.face_shift)
        out.append(FaceResult(box=tuple(float(v) for v in box), score=float(score),  # type: ignore[arg-type]
                              keypoints=None if kps is None else np.asarray(kps, np.float32), emotion=emotion,
                              class_index=k, probabilities=probs[i], class_names=names,
                              cam=None if cams is None else cams[i, k], crop_affine=affine, crop_size=size))
    return out


def _classify(predictor: FaceAnalyser, pending: list[tuple[str, dict[str, Any]]], cam: bool
              ) -> Iterator[tuple[Any, BaseException | None, dict[str, float]]]:
    from eacfer.infer.results import FrameResult

    crops = [d["crops"] for _, d in pending if d.get("crops") is not None]
    n_img = sum("error" not in d for _, d in pending)
    probs = cams = None
    ms = 0.0
    if crops:
        t0 = time.perf_counter()
        probs, cams = predictor.probabilities(np.concatenate(crops), cam)
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
        yield FrameResult(faces, d["size"], timings, image=d["image"], source=path, note=d.get("note")), None, timings


class _Pooled:
    """Iterator of ``(result, failure, stage_ms)`` in input order; ``close()`` stops the workers."""

    def __init__(self, predictor: FaceAnalyser, files: list[str], workers: int, batch_size: int, cam: bool, keep: bool):
        import multiprocessing as mp

        self.started = time.perf_counter()
        self.startup_s: float | None = None  # pool start → first file back (worker start-up, mostly imports)
        ctx = mp.get_context("spawn")
        self._pool = ctx.Pool(workers, initializer=_init_worker,
                              initargs=(predictor.detector_name, predictor.detector_mode, predictor.score_threshold,
                                        predictor.max_faces, predictor.input_size, predictor.face_size,
                                        getattr(predictor, "small_face", 48.0), predictor.face_margin,
                                        predictor.face_shift, getattr(predictor, "photo_fallback", None),
                                        getattr(predictor, "align", "box")))
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
