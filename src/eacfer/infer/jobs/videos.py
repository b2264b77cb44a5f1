"""``eacfer video`` as a job: one video, or many (files, folders of videos, text files listing them).

A job layer around :func:`eacfer.infer.jobs.video.run_video`, which it calls unchanged for each video.

* **One source** (a file, camera or URL): the outputs go straight into ``--out`` (``annotated.mp4``,
  ``frames.csv``, ``summary.json``) plus ``job.json``. Rerunning the same job on an unchanged file says it is
  already done; the output-folder rule (:mod:`eacfer.utils.outdir`) refuses another job's folder unless
  ``overwrite``.
* **Several sources** (more than one argument, a folder, or a ``.txt`` list with one source per line, ``#``
  comments, paths relative to the list; a list whose lines are not all existing paths, URLs or camera
  indices is refused before anything is written): one sub-folder per video (named after the file, made a
  safe name by :func:`eacfer.utils.outdir.safe_name` — never ``.``/``..`` or a path — with ``_1``, ``_2``
  … on clashes and beside folders that are not the job's; the names are kept across reruns; the same file
  given twice is one video) and ``index.csv`` (one row per video: status, frames, faces,
  tracks, fps, why it stopped, error), rewritten after every video, plus ``summary.json`` for the job.
  Rerunning skips videos that finished and are unchanged (same size and modification time); an interrupted
  or killed video restarts cleanly: its sub-folder's partial outputs are deleted first, never appended to.
  A video that fails (unreadable) is reported in the index and not retried unless ``retry_errors``.

Either way the job holds ``--out``'s lock (:class:`eacfer.utils.runlock.RunLock`) while it runs: a second job
into the same folder is refused at once, naming the holder.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from eacfer.infer.jobs.ledger import FileKey
from eacfer.infer.jobs.photos import model_record
from eacfer.infer.protocols import FaceAnalyser
from eacfer.infer.stream.sources import VIDEO_EXTENSIONS, is_path_source, is_video_file, source_kind
from eacfer.utils.atomic import write_json, write_text
from eacfer.utils.outdir import (
    MANIFEST,
    child,
    claim_output_dir,
    read_manifest,
    remove_outputs,
    remove_partials,
    safe_name,
    unique_name,
    write_manifest,
)
from eacfer.utils.runlock import RunLock

log = logging.getLogger(__name__)

VIDEO_OUTPUTS = ("annotated.mp4", "frames.csv", "summary.json")
INDEX = "index.csv"
INDEX_COLUMNS = ["source", "folder", "size", "mtime_ns", "status", "frames", "frames_with_faces", "faces",
                 "tracks", "fps", "stopped", "error"]


def expand_sources(sources: Sequence[str | os.PathLike[str]]) -> tuple[list[str], bool]:
    """``(videos, many)``: the sources of a job, and whether it is a multi-video job.

    Folders give the video files inside them (recursively, sorted); a ``.txt`` file gives the sources it
    lists. Cameras and URLs pass through.

    Example:
        >>> expand_sources(["talks/", "extra.mp4"])  # doctest: +SKIP
        (['talks/a.mp4', 'talks/b.mkv', 'extra.mp4'], True)
    """
    out: list[str] = []
    many = len(sources) > 1
    for s in [os.fspath(s) for s in sources]:
        p, kind = Path(s), source_kind(s)
        if kind == "folder":
            many = True
            found = []
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                found += [os.path.join(dirpath, f) for f in filenames
                          if not f.startswith(".") and is_video_file(f)]
            if not found:
                raise ValueError(f"{p}: no video files in this folder ({', '.join(VIDEO_EXTENSIONS[:5])}, …)")
            out += sorted(found)
        elif kind == "list":
            many = True
            out += _read_list(p)
        else:
            out.append(s)
    if not out:
        raise ValueError("no video sources given")
    seen: set[str] = set()
    unique = []
    for v in out:  # the same file twice (a folder and a file in it, a list and an argument) is one video
        key = os.path.realpath(v) if is_path_source(v) else v
        if key not in seen:
            seen.add(key)
            unique.append(v)
    return unique, many


def _read_list(p: Path) -> list[str]:
    """The sources a ``.txt`` list names (``#`` comments, blank lines skipped; paths relative to the list).

    Every line must be an existing file, a URL (``…://…``) or a camera index; otherwise the list is refused
    with ``FILE:LINE`` before the job writes anything (a text file given by mistake is not a job).
    """
    try:
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ValueError(f"{p}: cannot read the list of sources ({e.strerror or e})") from None
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not is_path_source(line):  # a URL or camera index
            out.append(line)
            continue
        q = Path(line)
        path = line if q.is_absolute() else str(p.parent / q)
        try:
            ok = Path(path).is_file()
        except (OSError, ValueError):  # a name too long for the file system, a NUL byte …
            ok = False
        if not ok:
            raise ValueError(f"{p}:{n}: {line[:80]!r} is not a video file, URL or camera index (a .txt source "
                             "lists one per line, # for comments); nothing was written")
        out.append(path)
    return out


def video_identity(predictor: FaceAnalyser, sources: Sequence[str], settings: dict[str, Any],
                   model_file: str | os.PathLike[str] | None) -> dict[str, Any]:
    """What makes two ``video`` runs the same job (sources as given, model, detector, settings)."""
    srcs = [os.path.abspath(s) if is_path_source(s) else s for s in map(str, sources)]
    from eacfer.infer.labelling import labelling_options

    return {"sources": srcs, **model_record(predictor, model_file), **settings, **labelling_options(predictor)}


def run_video_job(
    predictor: FaceAnalyser,
    sources: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    overwrite: bool = False,
    retry_errors: bool = False,
    model_file: str | os.PathLike[str] | None = None,
    progress: bool = True,
    executor: Callable[[list[tuple[str, str]]], Iterable[tuple[str, Any]]] | None = None,
    force_many: bool = False,
    **video_kw: Any,
) -> dict[str, Any]:
    """Run :func:`run_video` over ``sources`` into ``out_dir`` as one resumable job.

    ``video_kw`` are :func:`run_video`'s settings (``every``, ``max_frames``, ``write_video``, ``smoothing``,
    ``iou_threshold``, ``max_age``, ``cam``). Returns ``{"many": False, **run_video summary}`` for one
    source (``already_done`` when skipped) and the job summary (``videos``, ``done``, ``failed``,
    ``skipped``, ``interrupted``, ``index``) for several. ``executor`` (used by the Ray path) runs a list of
    ``(source, folder)`` elsewhere and yields ``(source, run_video summary or error message)`` as each ends;
    ``force_many`` gives even one source the many-videos layout.

    Example:
        >>> s = run_video_job(predictor, ["talks/"], "out/talks", every=2)  # doctest: +SKIP
        >>> s["done"], s["failed"]                                          # doctest: +SKIP
        (12, 0)
    """
    from eacfer.infer.stream.pipeline import check_stream_args

    # refused before a source is expanded or --out touched (run_video checks again: it is an entry point too)
    check_stream_args(video_kw.get("every", 1), video_kw.get("max_frames"), video_kw.get("pipeline", "threaded"))
    videos, many = expand_sources(sources)
    settings = {k: video_kw.get(k) for k in ("every", "max_frames", "write_video", "smoothing", "iou_threshold",
                                             "max_age", "cam")}
    identity = video_identity(predictor, [os.fspath(s) for s in sources], settings, model_file)
    single = not many and not force_many
    if single and is_path_source(videos[0]) and not Path(videos[0]).exists():  # reported before --out is touched
        raise FileNotFoundError(f"{videos[0]}: no such video file")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    created = not out.exists()
    try:
        with RunLock(out, what="video job"):
            if single:
                return _single(predictor, videos[0], out, identity, overwrite, progress, video_kw)
            return _many(predictor, videos, out, identity, overwrite, retry_errors, progress, video_kw, executor)
    except BaseException:
        if created:  # refused or failed before writing anything: leave no empty folder behind
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


def _single(predictor: FaceAnalyser, source: str, out: Path, identity: dict[str, Any], overwrite: bool, progress: bool,
            video_kw: dict[str, Any]) -> dict[str, Any]:
    from eacfer.infer.jobs.video import run_video

    key = FileKey.of(source) if is_path_source(source) else None
    keep = ("frames.csv", "summary.json") + (("annotated.mp4",) if video_kw.get("write_video", True) else ())
    claim = claim_output_dir(out, "video", identity, VIDEO_OUTPUTS, overwrite=overwrite, replaced_at_end=keep)
    prev = claim.previous or {}
    if (not overwrite and claim.mode == "resume" and key is not None and prev.get("status") == "complete"
            and prev.get("source_key") == [key.size, key.mtime_ns] and (out / "summary.json").is_file()):
        import json

        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        log.info("%s: already done in %s (same file, same settings); nothing to do", source, out)
        return {**summary, "many": False, "already_done": True}
    if claim.mode == "resume":  # the same job again (a changed file, a camera, an interrupted run): redo it
        remove_outputs(out, [n for n in VIDEO_OUTPUTS if n not in keep])
        remove_partials(out)
    if any(not p.name.startswith(".") for p in out.iterdir()):
        # earlier outputs stay until the new ones replace them: job.json says whose they are meanwhile
        write_manifest(out, "video", identity, VIDEO_OUTPUTS, "running")
    try:
        s = run_video(predictor, source, out, progress=progress, **video_kw)
    except BaseException:
        remove_partials(out)  # e.g. disk full: no half-written hidden file stays behind
        raise
    if video_kw.get("write_video", True) and not (s.get("outputs") or {}).get("video"):
        remove_outputs(out, ["annotated.mp4"])  # no frame written: never leave an earlier clip's video
    status = "interrupted" if s.get("interrupted") else "complete"
    write_manifest(out, "video", identity, VIDEO_OUTPUTS, status,
                   source_key=None if key is None else [key.size, key.mtime_ns])
    _add_model(out / "summary.json", identity)
    return {**s, "many": False, "already_done": False}


def _add_model(path: Path, identity: dict[str, Any]) -> None:
    """Record the model file, backbone, classes and detector settings in a video's summary.json."""
    import json

    try:
        s = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    # run_video records its own model and detection-stage settings; add only what it leaves out
    for k in ("model", "backbone", "classes", "input_size", "face_size"):
        s.setdefault(k, identity.get(k))
    s.setdefault("detector_settings", identity.get("detector"))
    write_json(path, s)


def _folder_names(videos: list[str], previous: dict[str, str], taken: set[str]) -> dict[str, str]:
    """One output folder name per video: a safe name (:func:`safe_name`) from the file name or the camera/URL,
    unique (also against ``taken``: names in ``--out`` that are not this job's), kept from ``previous`` runs."""
    used = set(taken) | {INDEX, MANIFEST, "summary.json"}
    names = {}
    for v, name in previous.items():  # an earlier run's names stay (only ever-safe ones: index.csv is a file)
        if v in videos and safe_name(name) == name and name.lower() not in {u.lower() for u in used}:
            names[v] = name
            used.add(name)
    for v in videos:
        if v in names:
            continue
        base = safe_name(Path(v).stem if is_path_source(v) else v.replace("://", "_"), default="video")
        names[v] = unique_name(base, used)
    return names


def _read_index(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return {r["source"]: r for r in csv.DictReader(fh) if r.get("source")}


def _write_index(path: Path, rows: dict[str, dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows.values():
        w.writerow({k: "" if r.get(k) is None else r.get(k) for k in INDEX_COLUMNS})
    write_text(path, buf.getvalue())


def _frame_count(source: str) -> int:
    import cv2

    from eacfer.infer.stream.sources import open_file_capture

    if not is_path_source(source):
        return 0
    cap = open_file_capture(source)
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        cap.release()


def _many(predictor: FaceAnalyser, videos: list[str], out: Path, identity: dict[str, Any], overwrite: bool,
          retry_errors: bool, progress: bool, video_kw: dict[str, Any],
          executor: Callable[[list[tuple[str, str]]], Iterable[tuple[str, Any]]] | None = None) -> dict[str, Any]:
    from eacfer.infer.jobs.video import run_video

    claim = claim_output_dir(out, "video", identity, (INDEX, "summary.json"), overwrite=overwrite)
    old = _read_index(out / INDEX) if claim.mode == "resume" else {}
    before = {s: r["folder"] for s, r in old.items() if r.get("folder")}
    names = _folder_names(videos, before, {p.name for p in out.iterdir()} - set(before.values()))
    outputs = [INDEX, "summary.json", *names.values()]
    # what is ours inside each video's folder: all --overwrite or a later run may delete there
    owned = {n: list(VIDEO_OUTPUTS) for n in names.values()}
    write_manifest(out, "video", identity, outputs, "running", owned=owned)
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for v in videos:
        key = FileKey.of(v) if is_path_source(v) else None
        r = old.get(v)
        same = r is not None and key is not None and (r.get("size"), r.get("mtime_ns")) == (str(key.size),
                                                                                           str(key.mtime_ns))
        if r is not None and same and (r["status"] == "done" or (r["status"] == "failed" and not retry_errors)) \
                and (r["status"] == "failed" or (child(out, names[v]) / "summary.json").is_file()):
            rows[v] = r
            continue
        rows[v] = {"source": v, "folder": names[v], "size": None if key is None else key.size,
                   "mtime_ns": None if key is None else key.mtime_ns, "status": "pending"}
        todo.append(v)
    skipped = len(videos) - len(todo)
    for gone in set(old) - set(videos):  # no longer a source of this job: its results go too
        gone_folder = old[gone].get("folder") or ""
        remove_outputs(out, [gone_folder], {gone_folder: VIDEO_OUTPUTS})
    _write_index(out / INDEX, rows)
    if skipped:
        log.info("%d of %d videos already done; %d to go", skipped, len(videos), len(todo))
    bar = None
    if progress:
        from tqdm import tqdm

        # one bar over the frames of every video still to do, so the ETA is for the whole job
        bar = tqdm(total=sum(_frame_count(v) for v in todo) or None, unit="frame", desc=f"{len(todo)} videos",
                   disable=None, position=0, smoothing=0.05)
    interrupted = False
    t0 = time.perf_counter()
    frames_now = 0
    for v in todo:
        folder = child(out, names[v])
        if folder.exists():  # an interrupted or killed earlier attempt: start this video from scratch
            remove_outputs(folder, VIDEO_OUTPUTS)
            remove_partials(folder)

    def local(items: list[tuple[str, str]]) -> Iterator[tuple[str, Any]]:
        for v, folder in items:
            try:
                yield v, run_video(predictor, v, folder, progress=False,
                                   on_frame=(lambda _r: bar.update(1)) if bar is not None else None, **video_kw)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one broken video never stops the job; it is reported in the index
                remove_partials(Path(folder))  # e.g. disk full: no half-written hidden file stays
                yield v, e

    try:
        work = [(v, str(child(out, names[v]))) for v in todo]
        for v, s in (local(work) if executor is None else executor(work)):
            row = rows[v]
            if not isinstance(s, dict):
                row.update(status="failed", error=str(s) if str(s).startswith(v) else f"{v}: {s}")
                log.warning("%s", row["error"])
                _write_index(out / INDEX, rows)
                continue
            frames_now += s["frames"]
            if bar is not None and executor is not None:
                bar.update(s["frames"])
            _add_model(child(out, names[v]) / "summary.json", identity)
            row.update(status="interrupted" if s["interrupted"] else "done", frames=s["frames"],
                       frames_with_faces=s["frames_with_faces"], faces=s.get("faces"), tracks=s["tracks"],
                       fps=s["fps"], stopped=s["stopped"], error=None)
            _write_index(out / INDEX, rows)
            if s["interrupted"]:
                interrupted = True
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    status = [r["status"] for r in rows.values()]
    summary = {
        "videos": len(videos), "done": status.count("done"), "failed": status.count("failed"),
        "pending": status.count("pending") + status.count("interrupted"), "skipped": skipped,
        "frames_this_run": frames_now, "fps_this_run": round(frames_now / wall, 2) if wall > 0 else None,
        "wall_s": round(wall, 3), "interrupted": interrupted, "index": INDEX,
        "failures": [f"{r['error']}" for r in rows.values() if r["status"] == "failed"][:50], **identity,
    }
    write_json(out / "summary.json", summary)
    write_manifest(out, "video", identity, outputs,
                   "complete" if not interrupted and summary["pending"] == 0 else "interrupted", owned=owned)
    return {**summary, "many": True, "out": str(out)}


__all__ = ["expand_sources", "run_video_job", "read_manifest"]
