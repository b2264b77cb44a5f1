"""Predict on image files and folders: a resumable job that streams ``predictions.csv`` / ``.jsonl`` / ``.json``.

One row per face: ``file, face, x, y, w, h, score, emotion, p_<class>…, error``. A readable image without a
face gives one row with empty face fields; an unreadable file gives one row whose ``error`` names the
problem, and the run goes on.

The job streams: every finished file's rows are appended and flushed (see :mod:`eacfer.infer.jobs.ledger`),
so a kill loses at most the files in flight, and memory stays flat over any number of images. Rerunning the
same job into the same ``--out`` resumes it: files already done (same path, size and modification time) are
skipped, a changed file is redone, files gone from the inputs are dropped, a broken file stays reported (not
retried, unless ``retry_errors``). A different job into a non-empty ``--out`` is refused unless
``overwrite`` (see :mod:`eacfer.utils.outdir`). ``workers > 0`` decodes and detects in worker processes
and classifies faces of several images in one batch (:mod:`eacfer.infer.jobs.pool`).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from eacfer.infer.jobs.ledger import (
    CSV_NAME,
    JSON_NAME,
    JSONL_NAME,
    LEDGER,
    FileKey,
    Ledger,
    annotated_names,
    error_text,
)
from eacfer.infer.protocols import FaceAnalyser
from eacfer.infer.stream.sources import is_video_file
from eacfer.utils.atomic import atomic_path, write_json
from eacfer.utils.interrupt import HoldCtrlC
from eacfer.utils.outdir import claim_output_dir, safe_name, write_manifest
from eacfer.utils.runlock import RunLock

log = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 50
SUMMARY_NAME = "summary.json"
ANNOTATED_DIR = "annotated"
#: every name ``eacfer predict`` writes into ``--out`` (the set ``--overwrite`` replaces)
PREDICT_OUTPUTS = (CSV_NAME, JSONL_NAME, JSON_NAME, LEDGER, SUMMARY_NAME, ANNOTATED_DIR, "shards")


def prediction_columns(class_names: Sequence[str]) -> list[str]:
    """Columns of ``predictions.csv`` (and keys of each ``predictions.json`` row)."""
    return ["file", "face", "x", "y", "w", "h", "score", "emotion", *[f"p_{c}" for c in class_names], "error",
            "note"]


def collect_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """Expand files and folders (recursively) into ``(file, root)`` pairs; missing paths raise.

    A file reached twice (``photos photos/a.jpg``, a link to a file already listed) is kept once, at its
    first mention: same resolved path, same file.

    A video given by name raises ``ValueError`` pointing to ``eacfer video``; videos found inside folders are
    not inputs (count them with :func:`count_videos`).

    Example:
        >>> collect_inputs(["photos/"])  # doctest: +SKIP
        [(PosixPath('photos/a.jpg'), PosixPath('photos'))]
    """
    from eacfer.data.imageio import list_images

    out: list[tuple[Path, Path]] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        if p.is_dir():
            out.extend((f, p) for f in list_images(p, recursive=True))
        elif is_video_file(p):
            raise ValueError(f"{p}: a video; `eacfer predict` reads photos — use `eacfer video {p} --checkpoint … "
                             f"--out …` for videos")
        else:
            out.append((p, p.parent))  # an explicit file is tried whatever its extension
    seen: set[str] = set()
    unique = []
    for f, root in out:
        real = os.path.realpath(f)
        if real not in seen:
            seen.add(real)
            unique.append((f, root))
    if len(unique) < len(out):
        log.info("%d input file(s) were given more than once; each is predicted once", len(out) - len(unique))
    return unique


def count_videos(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Video files inside the given folders (they are not predicted on; the summary reports them)."""
    found: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                found.extend(os.path.join(dirpath, f) for f in filenames if not f.startswith(".") and is_video_file(f))
    unique = {os.path.realpath(f): f for f in reversed(found)}  # a folder given twice: each video once
    return sorted(unique.values())


def _annotated_name(file: Path, root: Path, used: set[str]) -> str:
    """``annotated/``'s name for ``file``: its path under ``root``, every part a safe name (never ``..``)."""
    try:
        parts = file.relative_to(root).with_suffix("").parts
    except ValueError:
        parts = (file.stem,)
    base = "/".join(safe_name(p, default="image") for p in parts) or "image"
    name, i = base + ".jpg", 1
    taken = {u.lower() for u in used}
    while name.lower() in taken:  # two inputs with the same name (from different arguments): keep both
        name, i = f"{base}_{i}.jpg", i + 1
    used.add(name)
    return name


def _row(file: str, class_names: Sequence[str], face: Any = None, index: int | None = None,
         error: str = "") -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in prediction_columns(class_names)}
    row["file"], row["error"] = file, error or None
    if face is not None:
        row["face"] = index
        row["x"], row["y"], row["w"], row["h"] = (round(float(v), 1) for v in face.box)
        row["score"] = round(float(face.score), 4)
        row["emotion"] = face.emotion
        for c, p in zip(class_names, face.probabilities, strict=True):
            row[f"p_{c}"] = round(float(p), 5)
    return row


def rows_for(file: str, class_names: Sequence[str], result: Any, failure: BaseException | None
             ) -> tuple[list[dict[str, Any]], str, str | None]:
    """``(rows, status, error)`` of one file from a :class:`FrameResult` (or the exception it raised)."""
    if result is None:
        err = error_text(file, failure if failure is not None else RuntimeError("no result"))
        return [_row(file, class_names, error=err)], "error", err
    note = getattr(result, "note", None)  # which detector found the faces, or what would look harder
    if not result.faces:
        return [{**_row(file, class_names), "note": note}], "ok", None
    return [{**_row(file, class_names, f, i), "note": note} for i, f in enumerate(result.faces)], "ok", None


def job_identity(predictor: FaceAnalyser, paths: Sequence[str | os.PathLike[str]], save_images: bool, cam: bool,
                 model_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """What makes two ``predict`` runs the same job: inputs, model (name + sha256), detector, outputs asked for,
    and the labelling options when set (``min_confidence``, ``tta``)."""
    ident = {"inputs": [os.path.abspath(p) for p in paths], **model_record(predictor, model_file),
             "save_images": bool(save_images), "cam": bool(cam)}
    from eacfer.infer.labelling import labelling_options

    ident.update(labelling_options(predictor))
    return ident


def model_record(predictor: FaceAnalyser, model_file: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The model (:meth:`Predictor.model_record <eacfer.infer.predictor.Predictor.model_record>`, the one
    builder of that entry), backbone, classes and detector settings — recorded in every summary."""
    rec = predictor.model_record(model_file)
    # these keys of the model entry are repeated at the top of job identities and summaries (files written by
    # earlier versions are compared against them); their values come from the one builder above
    return {
        "model": rec,
        **{k: rec[k] for k in ("backbone", "classes", "input_size", "face_size", "backend")},
        "detector": {"name": predictor.detector_name, "mode": predictor.detector_mode,
                     "score_threshold": predictor.score_threshold, "max_faces": predictor.max_faces,
                     "small_face": getattr(predictor, "small_face", None),
                     "photo_fallback": _fallback_in_use(predictor)},
    }


def _fallback_in_use(predictor: FaceAnalyser) -> str | None:
    """The photo fallback detector that really runs (``None`` when off or not installed)."""
    from eacfer.infer.detect.fallback import fallback_available

    name = getattr(predictor, "photo_fallback", None)
    return name if name and fallback_available(name) else None


def _sequential(predictor: FaceAnalyser, todo: list[tuple[Path, Path]], cam: bool) -> Iterator[tuple[Any, Any, dict]]:
    """``(result, failure, stage_ms)`` per file, one at a time in this process (the default path)."""
    for file, _root in todo:
        try:
            r = predictor.predict(file, cam=cam)
        except Exception as e:  # one bad file never stops the run; it becomes an error row
            yield None, e, {}
            continue
        yield r, None, {k: v for k, v in r.timings.items() if k != "total"}


def predict_paths(
    predictor: FaceAnalyser,
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    save_images: bool = False,
    cam: bool = False,
    progress: bool = True,
    *,
    resume: bool | None = None,
    overwrite: bool = False,
    retry_errors: bool = False,
    workers: int = 0,
    batch_size: int = 32,
    model_file: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Run ``predictor`` on every image under ``paths`` and write the prediction files into ``out_dir``.

    Args:
        resume: ``None`` (default) resumes when ``out_dir`` holds the same job and starts fresh otherwise;
            ``True`` insists on resuming (``ValueError`` when there is nothing to resume); ``False`` redoes
            every file of the same job.
        overwrite: replace another job's results in ``out_dir`` instead of refusing.
        retry_errors: redo files that failed in an earlier run (by default they stay reported, not retried).
        workers: ``0`` runs everything in this process; ``N > 0`` decodes and detects in N worker processes
            and classifies faces of several images per batch (``batch_size`` faces at most).
        model_file: the model file, recorded (name + sha256) in the summary and the job's identity.

    Returns the job summary (also ``summary.json``): totals over the whole job — ``files``, ``images``
    (readable), ``faces``, ``no_face``, ``errors``, the first error messages — and this run's ``skipped``
    (already done), ``processed``, ``images_per_s``, ``stage_ms``; ``interrupted`` after Ctrl-C (the outputs
    then hold every finished file, and a rerun continues).

    Example:
        >>> s = predict_paths(Predictor.from_checkpoint("model.pt"), ["photos/"], "out/")  # doctest: +SKIP
        >>> s["files"], s["faces"], s["errors"]                                            # doctest: +SKIP
        (120, 131, 2)
    """
    if workers < 0 or batch_size < 1:
        raise ValueError(f"workers must be >= 0 and batch_size >= 1, got {workers} and {batch_size}")
    job = PredictJob(predictor, paths, out_dir, save_images=save_images, cam=cam, progress=progress, resume=resume,
                     overwrite=overwrite, retry_errors=retry_errors, model_file=model_file)
    names = job.names

    def convert(item: Any) -> tuple[str, list[dict[str, Any]], str, str | None, str | None, dict[str, float]]:
        (file, _root), (r, failure, stages) = item
        rows, status, err = rows_for(str(file), names, r, failure)
        if err is not None:
            log.info("%s: %s", file, err)
        name = job.ann.get(str(file)) if save_images and r is not None else None
        if save_images and r is None and str(file) in job.ann:  # a redone file that is now unreadable
            (job.out / ANNOTATED_DIR / job.ann[str(file)]).unlink(missing_ok=True)
        if name is not None:
            try:
                save_annotated(r, job.out / ANNOTATED_DIR / name, cam)
            except Exception as e:  # e.g. disk full: the predictions themselves are still valid
                job.save_errors += 1
                name = None
                log.warning("%s: annotated copy not written: %s", file, e)
        return str(file), rows, status, err, name, stages

    results: Any = None
    with job:
        try:
            if workers > 0:
                from eacfer.infer.jobs.pool import pooled

                results = pooled(predictor, job.todo, workers=workers, batch_size=batch_size, cam=cam,
                                 keep_images=save_images)
            else:
                results = _sequential(predictor, job.todo, cam)
            job.run(zip(job.todo, results, strict=False), convert)
        finally:
            if results is not None and hasattr(results, "close"):
                results.close()  # stops worker processes
        extra: dict[str, Any] = {"workers": workers}
        if workers > 0 and results is not None:
            extra["worker_startup_s"] = results.startup_s
        return job.finish(extra)


class PredictJob:
    """One ``eacfer predict`` job in ``out_dir``: the output-folder rule, what is left to do, the streams.

    The engines (one process, worker pool, Ray) only produce each file's rows; this class writes them
    (between Ctrl-Cs), counts, shows the job-wide progress bar and finishes the outputs. It holds
    ``out_dir``'s lock (:class:`~eacfer.utils.runlock.RunLock`) from its creation until the ``with`` block
    ends: a second job into the same folder is refused at once, naming the holder.

    Example:
        >>> with PredictJob(predictor, ["photos/"], "out/") as job:   # doctest: +SKIP
        ...     job.run(items, convert); summary = job.finish({})
    """

    def __init__(self, predictor: FaceAnalyser, paths: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                 save_images: bool = False, cam: bool = False, progress: bool = True, resume: bool | None = None,
                 overwrite: bool = False, retry_errors: bool = False,
                 model_file: str | os.PathLike[str] | None = None):
        out = self.out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: exists and is not a folder")
        inputs = collect_inputs(paths)
        created = not out.exists()
        self.lock = RunLock(out, what="predict job")
        self.lock.acquire()  # before anything in --out is read or written
        try:
            self._start(predictor, paths, inputs, save_images, cam, progress, resume, overwrite, retry_errors,
                        model_file)
        except BaseException:
            self.lock.release()
            if created:  # refused before writing anything: leave no empty folder behind
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise

    def __enter__(self) -> PredictJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the streams (a no-op after :meth:`finish`) and release ``out_dir``'s lock."""
        self.ledger.close()
        self.lock.release()

    def _start(self, predictor: FaceAnalyser, paths: Sequence[str | os.PathLike[str]], inputs: list[tuple[Path, Path]],
               save_images: bool, cam: bool, progress: bool, resume: bool | None, overwrite: bool,
               retry_errors: bool, model_file: str | os.PathLike[str] | None) -> None:
        out = self.out
        # --out inside a searched folder: never read our own outputs (annotated copies) back as photos
        out_real = Path(os.path.realpath(out))
        kept = [(f, root) for f, root in inputs if not Path(os.path.realpath(f)).is_relative_to(out_real)]
        if len(kept) < len(inputs):
            log.info("skipping %d files inside the output folder %s", len(inputs) - len(kept), out)
            inputs = kept
        self.videos = [v for v in count_videos(paths) if not Path(os.path.realpath(v)).is_relative_to(out_real)]
        if self.videos:
            log.warning("%d video file(s) in the folders are not photos and were left out (use `eacfer video`), "
                        "e.g. %s", len(self.videos), self.videos[0])
        if not inputs:
            extra = f" ({len(self.videos)} videos found: use `eacfer video`)" if self.videos else ""
            raise ValueError(f"no image files found in {', '.join(map(str, paths))}{extra}")
        self.identity = job_identity(predictor, paths, save_images, cam, model_file)
        claim = claim_output_dir(out, "predict", self.identity, PREDICT_OUTPUTS, overwrite=overwrite,
                                 replaced_at_end=(CSV_NAME, JSONL_NAME, JSON_NAME, LEDGER, SUMMARY_NAME))
        if resume and claim.mode != "resume":
            raise ValueError(f"{out}: nothing to resume (no earlier run of this job there)")
        self.names = list(predictor.class_names)
        self.ledger = Ledger(out, prediction_columns(self.names))
        self.keys = {str(f): FileKey.of(f) for f, _ in inputs}
        # the fresh streams exist before job.json names this job: a resume never reads another job's ledger
        self.done = self.ledger.start(self.keys, resume=claim.mode == "resume" and resume is not False,
                                      retry_errors=retry_errors)
        used = annotated_names(self.done)
        self.todo = [(f, root) for f, root in inputs if str(f) not in self.done]
        self.ann = {str(f): _annotated_name(f, root, used) for f, root in self.todo} if save_images else {}
        # the annotated copies this job may write: the only files of annotated/ that --overwrite or a later
        # run of it may delete (nothing else there is ours)
        self.owned = {ANNOTATED_DIR: sorted(glob.escape(n) for n in used | set(self.ann.values())),
                      "shards": ["part-*.csv"]}  # fnmatch patterns (a name like "a[1].jpg" is escaped)
        prev_owned = set(((claim.previous or {}).get("owned") or {}).get(ANNOTATED_DIR) or [])
        _drop_stale_annotated(out / ANNOTATED_DIR, prev_owned - set(self.owned[ANNOTATED_DIR]))
        write_manifest(out, "predict", self.identity, PREDICT_OUTPUTS, "running", owned=self.owned)
        if self.done:
            log.info("resuming: %d of %d files already done, %d to go", len(self.done), len(inputs), len(self.todo))
        self.processed = self.save_errors = 0
        self.stage_sums: dict[str, float] = {}
        self.interrupted = False
        self.hold = HoldCtrlC()  # Ctrl-C lands between files: CSV, JSON Lines, ledger, annotated copies agree
        self.bar = None
        if progress:
            from eacfer.utils.progress import progress_bar as tqdm

            # the bar covers the whole job: files already done count as done, so the ETA is for what is left
            self.bar = tqdm(total=len(inputs), initial=len(self.done), unit="img", desc="predict", disable=None,
                            smoothing=0.05)
        self.t_start = time.perf_counter()

    def run(self, items: Iterable[Any], convert: Callable[[Any], tuple]) -> None:
        """Write every item's rows: ``convert(item)`` → ``(file, rows, status, error, annotated, stage_ms)``.

        ``convert`` runs with Ctrl-C held, so an item is written whole or not at all; Ctrl-C while the
        engine computes ends the loop (``interrupted``) and the finished files stay.
        """
        try:
            for item in items:
                with self.hold:
                    file, rows, status, err, name, stages = convert(item)
                    self.ledger.add(self.keys[file], rows, status, annotated=name, error=err)
                    self.processed += 1
                    for k, v in stages.items():
                        self.stage_sums[k] = self.stage_sums.get(k, 0.0) + v
                    if self.bar is not None:
                        self.bar.update(1)
        except KeyboardInterrupt:
            self.interrupted = True
            log.warning("interrupted (Ctrl-C) after %d files; closing the outputs (rerun to continue)",
                        len(self.done) + self.processed)

    def finish(self, extra: dict[str, Any]) -> dict[str, Any]:
        """Close the streams, write ``predictions.json``, ``summary.json`` and ``job.json``; return the summary."""
        if self.bar is not None:
            self.bar.close()
        wall = time.perf_counter() - self.t_start
        n = self.processed
        out = self.out
        with self.hold:
            summary = {
                "skipped": len(self.done), "processed": n, "save_errors": self.save_errors,
                "videos_ignored": len(self.videos), "videos": self.videos[:MAX_LISTED_ERRORS],
                "interrupted": self.interrupted, "complete": not self.interrupted,
                "images_per_s": round(n / wall, 3) if wall > 0 and n else None, "wall_s": round(wall, 3),
                "stage_ms": {k: round(v / max(1, n), 3) for k, v in self.stage_sums.items()},
                **extra, **self.identity, "class_names": self.names,
            }
            summary = self.ledger.finish(summary)
            write_json(out / SUMMARY_NAME, summary)
            write_manifest(out, "predict", self.identity, PREDICT_OUTPUTS,
                           "interrupted" if self.interrupted else "complete", owned=self.owned)
        return {**summary, "outputs": {"csv": str(out / CSV_NAME), "json": str(out / JSON_NAME),
                                       "jsonl": str(out / JSONL_NAME), "summary": str(out / SUMMARY_NAME),
                                       "annotated": str(out / ANNOTATED_DIR) if self.ann or
                                       self.identity["save_images"] else None}}


def _drop_stale_annotated(folder: Path, stale: set[str]) -> None:
    """Delete the annotated copies (``stale``: escaped patterns) an earlier run of this job wrote that it no
    longer owns (files that left the inputs); any other file in ``annotated/`` is not ours and stays."""
    from eacfer.utils.outdir import remove_outputs

    if stale and folder.is_dir():
        remove_outputs(folder.parent, [folder.name], {folder.name: sorted(stale)})


def save_annotated(r: Any, path: Path, cam: bool) -> None:
    """Write ``r`` (an :class:`~eacfer.infer.results.ImageResult`) with its boxes and labels drawn, as a JPEG at
    ``path`` (atomically); the local and the Ray photo jobs both write ``annotated/`` with it.

    Example:
        >>> save_annotated(predictor.predict("face.jpg"), Path("out/annotated/face.jpg"), cam=False)  # doctest: +SKIP
    """
    import cv2

    from eacfer.infer.viz import annotate

    img = annotate(r.image, r.faces, cam=cam, copy=False)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise OSError(f"{path}: could not encode the annotated image")
    # imencode + our own write: cv2.imwrite cannot handle non-ASCII paths on every platform
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
