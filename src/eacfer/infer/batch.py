"""Predict on image files and folders; write ``predictions.csv`` / ``predictions.json`` (and annotated copies).

One row per face: ``file, face, x, y, w, h, score, emotion, p_<class>…, error``. A readable image without a
face gives one row with empty face fields; an unreadable file gives one row whose ``error`` names the
problem, and the run goes on. Both files are streamed to temporary names and renamed at the end (also
after Ctrl-C), so memory stays flat over thousands of images and a file that exists is complete.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eacfer.utils.atomic import atomic_open, atomic_path
from eacfer.utils.interrupt import HoldCtrlC

log = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 50


def prediction_columns(class_names: Sequence[str]) -> list[str]:
    """Columns of ``predictions.csv`` (and keys of each ``predictions.json`` row)."""
    return ["file", "face", "x", "y", "w", "h", "score", "emotion", *[f"p_{c}" for c in class_names], "error"]


def collect_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """Expand files and folders (recursively) into ``(file, root)`` pairs; missing paths raise.

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
        else:
            out.append((p, p.parent))  # an explicit file is tried whatever its extension
    return out


def _annotated_name(file: Path, root: Path, used: set[str]) -> str:
    try:
        base = file.relative_to(root).with_suffix("").as_posix()
    except ValueError:
        base = file.stem
    name, i = base + ".jpg", 1
    while name in used:  # two inputs with the same name (from different arguments): keep both
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


def predict_paths(
    predictor: Any,
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    save_images: bool = False,
    cam: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``predictor`` on every image under ``paths`` and write the prediction files into ``out_dir``.

    Returns a summary: ``files``, ``images`` (readable), ``faces``, ``no_face``, ``errors`` and the
    first error messages; ``interrupted`` is True after Ctrl-C (outputs are still complete up to there).

    Example:
        >>> s = predict_paths(Predictor.from_checkpoint("model.pt"), ["photos/"], "out/")  # doctest: +SKIP
        >>> s["files"], s["faces"], s["errors"]                                            # doctest: +SKIP
        (120, 131, 2)
    """
    from eacfer.data.imageio import ImageLoadError

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    inputs = collect_inputs(paths)
    # --out inside a searched folder: never read our own outputs (annotated copies) back as photos
    out_real = Path(os.path.realpath(out))
    kept = [(f, root) for f, root in inputs if not Path(os.path.realpath(f)).is_relative_to(out_real)]
    if len(kept) < len(inputs):
        log.info("skipping %d files inside the output folder %s", len(inputs) - len(kept), out)
        inputs = kept
    if not inputs:
        raise ValueError(f"no image files found in {', '.join(map(str, paths))}")
    out.mkdir(parents=True, exist_ok=True)
    names = list(predictor.class_names)
    cols = prediction_columns(names)
    stats = {"files": 0, "images": 0, "faces": 0, "no_face": 0, "errors": 0, "save_errors": 0}
    errors: list[str] = []
    used: set[str] = set()
    interrupted = False
    with atomic_open(out / "predictions.csv", newline="") as fcsv, atomic_open(out / "predictions.json") as fjs:
        writer = csv.DictWriter(fcsv, fieldnames=cols)
        writer.writeheader()
        fjs.write('{\n"columns": ' + json.dumps(cols) + ',\n"predictions": [\n')
        first = True

        def emit(row: dict[str, Any]) -> None:
            nonlocal first
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
            fjs.write(("" if first else ",\n") + json.dumps(row, ensure_ascii=False))
            first = False

        it: Any = inputs
        if progress:
            from eacfer.utils.progress import progress_bar as tqdm

            it = tqdm(inputs, unit="img", desc="predict", disable=None)
        hold = HoldCtrlC()  # Ctrl-C lands between files: CSV, JSON, annotated copies and counts agree
        try:
            for file, root in it:
                try:
                    r, failure = predictor.predict(file, cam=cam), None
                except Exception as e:  # one bad file never stops the run; it becomes an error row
                    r, failure = None, e
                with hold:
                    stats["files"] += 1
                    if r is None:
                        e = failure
                        reason = (str(e) if isinstance(e, (ImageLoadError, OSError, ValueError))
                                  else f"{type(e).__name__}: {e}")
                        msg = reason if reason.startswith(str(file)) else f"{file}: {reason}"
                        stats["errors"] += 1
                        if len(errors) < MAX_LISTED_ERRORS:
                            errors.append(msg)
                        log.info("%s", msg)  # listed in the summary and the error column
                        emit(_row(str(file), names, error=msg[len(str(file)) + 2:]))
                        continue
                    stats["images"] += 1
                    stats["faces"] += len(r.faces)
                    if not r.faces:
                        stats["no_face"] += 1
                        emit(_row(str(file), names))
                    for i, f in enumerate(r.faces):
                        emit(_row(str(file), names, f, i))
                    if save_images:
                        try:
                            _save_annotated(r, out / "annotated" / _annotated_name(file, root, used), cam)
                        except Exception as e:  # e.g. disk full: the predictions themselves are still valid
                            stats["save_errors"] += 1
                            log.warning("%s: annotated copy not written: %s", file, e)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted (Ctrl-C) after %d files; closing the outputs", stats["files"])
        summary = {**stats, "interrupted": interrupted, "error_messages": errors,
                   "backend": predictor.backend, "detector": predictor.detector_name,
                   "class_names": names}
        fjs.write('\n],\n"summary": ' + json.dumps(summary, ensure_ascii=False) + "\n}\n")
    return {**summary, "outputs": {"csv": str(out / "predictions.csv"), "json": str(out / "predictions.json"),
                                   "annotated": str(out / "annotated") if save_images else None}}


def _save_annotated(r: Any, path: Path, cam: bool) -> None:
    import cv2

    from eacfer.infer.viz import annotate

    img = annotate(r.image, r.faces, cam=cam, copy=False)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise OSError(f"{path}: could not encode the annotated image")
    # imencode + our own write: cv2.imwrite cannot handle non-ASCII paths on every platform
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
