"""Evaluation through the detector: the accuracy a user meets on uncropped photos, next to the benchmark's.

Benchmarks score a classifier on the dataset's own aligned crops; a user's photo goes through eacfer's
detector and alignment first. RAF-DB ships the original photos with a face box per photo
(``Annotation/boundingbox``) and the aligned crops cut from them, so both can be measured on the same images:

1. eacfer's detector runs on each original photo; the detected face whose box overlaps the annotated box
   most (IoU ≥ ``min_iou``, default 0.5) is *the* face (none: not found);
2. that face goes through eacfer's own alignment and the classifier (exactly as ``eacfer predict``);
3. the official aligned crop of the same image goes through the same classifier (as ``eacfer eval``).

Reported: ``faces_found`` of ``originals``, accuracy on eacfer's own crops and on the official aligned crops
of the images whose face was found, their difference (``gap``, aligned minus own), and the end-to-end
accuracy (a face not found counts as an error). With annotated originals both ways of framing the face
(:data:`eacfer.infer.align.ALIGN_METHODS`: the detector's box, or eyes and mouth onto RAF-DB's template) are
measured on the same detections: accuracy, and the mean absolute pixel difference (0–255) between eacfer's
crop and the official aligned crop at the aligned crop's size — how close each comes to what the model was
trained on. Any folder tree of labelled uncropped photos
(``class/photo.jpg``, the folder layout) works too: without annotated boxes the most confident detection is
the face, and there are no aligned crops to compare with.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MIN_IOU = 0.5


def _xywh(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    return box[0], box[1], box[2] - box[0], box[3] - box[1]


def evaluate_through_detector(
    model_path: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    split: str = "test",
    out_dir: str | os.PathLike[str] | None = None,
    format: str | None = None,
    detector: str = "mediapipe",
    device: str = "auto",
    backend: str | None = None,
    min_iou: float = DEFAULT_MIN_IOU,
    score_threshold: float = 0.5,
    progress: bool = True,
    align: str = "box",
) -> dict[str, Any]:
    """Run the detector + alignment + classifier on the original photos of ``split`` (module docstring).

    Returns the report (also ``OUT/through_detector.json``, with one row per photo in
    ``OUT/through_detector.csv``).

    Example:
        >>> r = evaluate_through_detector("runs/eac/model.pt", "data/RAF-DB", out_dir="runs/eac/wild")  # doctest: +SKIP
        >>> r["faces_found"], r["accuracy_own_crops"], r["accuracy_aligned_crops"], r["gap"]           # doctest: +SKIP
    """
    import numpy as np

    from eacfer.data.datasets import load_split
    from eacfer.data.formats.rafdb import original_files, read_boundingbox
    from eacfer.data.imageio import load_image
    from eacfer.infer.detect.base import box_iou
    from eacfer.infer.predictor import Predictor
    from eacfer.utils.atomic import write_json, write_text
    from eacfer.utils.progress import progress_bar as tqdm

    if not 0.0 < min_iou <= 1.0:
        raise ValueError(f"--min-iou must be in (0, 1], got {min_iou}")
    if not Path(data_root).exists():
        raise FileNotFoundError(f"{data_root}: dataset folder not found")
    data = load_split(data_root, split=split, format=format)
    annotated = str(data.format) in ("rafdb",)
    if str(data.format) not in ("rafdb", "folder"):
        raise ValueError(f"{data_root}: --through-detector needs uncropped photos: RAF-DB (Image/original + "
                         f"Annotation/boundingbox) or a folder tree class/photo.jpg, not the {data.format} format")
    with Predictor.from_checkpoint(model_path, device=device, detector=detector, backend=backend,
                                   score_threshold=score_threshold, align=align) as wild:
        # predictions and truths are compared by class name, so only the names must agree, not their order
        unknown = [str(c) for c in data.class_names if str(c) not in wild.class_names]
        if unknown:
            raise ValueError(f"{data_root}: classes {unknown} of the set are not among the model's "
                             f"{list(wild.class_names)}")
        aligned = Predictor(wild.classifier, detector="none") if annotated else None
        rows: list[dict[str, Any]] = []
        for s in tqdm(data.samples, desc="through the detector", unit="photo", disable=not progress, leave=False):
            row: dict[str, Any] = {"file": s.name, "truth": data.class_names[s.label], "faces_detected": 0,
                                   "best_iou": None, "found": False, "own_prediction": None,
                                   "aligned_prediction": None, "problem": None}
            rows.append(row)
            if annotated:
                photo, box_file, _ = original_files(data.root, s.name)
                if not photo.is_file() or not box_file.is_file():
                    row["problem"] = f"no original photo or box file ({photo.name}, {box_file.name})"
                    continue
            else:
                photo, box_file = Path(str(s.path)), None
            try:
                truth_box = _xywh(read_boundingbox(box_file)) if box_file is not None else None
                rgb = load_image(photo)
                faces = wild.predict(rgb, keep_image=False).faces
            except (OSError, ValueError) as e:
                row["problem"] = str(e)
                continue
            row["faces_detected"] = len(faces)
            if truth_box is not None:
                overlaps = [box_iou(f.box, truth_box) for f in faces]
                best = int(np.argmax(overlaps)) if faces else -1
                row["best_iou"] = round(float(overlaps[best]), 4) if faces else 0.0
                face = faces[best] if faces and overlaps[best] >= min_iou else None
            else:
                face = max(faces, key=lambda f: f.score) if faces else None
            if face is not None:
                row["found"] = True
                row["own_prediction"] = face.emotion
            if aligned is not None and s.path is not None:
                official = load_image(Path(str(s.path)))
                row["aligned_prediction"] = aligned.predict(official, keep_image=False).faces[0].emotion
                if face is not None:
                    row.update(_compare_framings(wild, rgb, face, official))
    report = _report(rows, annotated, min_iou)
    report.update({"data": str(Path(data_root).resolve()), "split": split, "format": str(data.format),
                   "model": str(Path(model_path).resolve()), "detector": wild.detector_settings("image")})
    log.info("through the detector: %d of %d faces found; accuracy own crops %s, aligned crops %s",
             report["faces_found"], report["originals"], report["accuracy_own_crops"], report["accuracy_aligned_crops"])
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for r in rows for k in r)) or ["file"]  # framing columns: found faces only
        w = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        write_text(out / "through_detector.csv", buf.getvalue())
        report["outputs"] = {"report": str(out / "through_detector.json"), "rows": str(out / "through_detector.csv")}
        write_json(out / "through_detector.json", report)
    return report


def _compare_framings(wild: Any, rgb: Any, face: Any, official: Any) -> dict[str, Any]:
    """Per framing method: the prediction on eacfer's crop and its mean absolute pixel difference from the
    official aligned crop (both at the official crop's size)."""
    import numpy as np

    from eacfer.infer.align import ALIGN_METHODS, model_inputs, resize_square
    from eacfer.infer.detect import Detection

    det = Detection(face.box, face.score, face.keypoints)
    side = int(official.shape[0])
    ref = resize_square(official, side).astype(np.float32)
    out: dict[str, Any] = {}
    for method in ALIGN_METHODS:
        crop = model_inputs(rgb, [det], side, None, wild.face_margin, shift=wild.face_shift, align=method)
        out[f"pixel_error_{method}"] = round(float(np.abs(crop[0].astype(np.float32) - ref).mean()), 3)
        inputs = model_inputs(rgb, [det], wild.input_size, wild.face_size, wild.face_margin, shift=wild.face_shift,
                              align=method)
        probs, _ = wild.probabilities(inputs)
        out[f"prediction_{method}"] = wild.label(probs[0])[1]
    return out


def _report(rows: list[dict[str, Any]], annotated: bool, min_iou: float) -> dict[str, Any]:
    """The figures of the module docstring from the per-photo rows."""
    def acc(sel: list[dict[str, Any]], key: str) -> float | None:
        return round(sum(r[key] == r["truth"] for r in sel) / len(sel), 4) if sel else None

    usable = [r for r in rows if r["problem"] is None]
    found = [r for r in usable if r["found"]]
    own, aligned = acc(found, "own_prediction"), acc(found, "aligned_prediction") if annotated else None
    framings = {}
    if annotated and found:
        from eacfer.infer.align import ALIGN_METHODS

        for m in ALIGN_METHODS:
            errs = [r[f"pixel_error_{m}"] for r in found if r.get(f"pixel_error_{m}") is not None]
            framings[m] = {"accuracy": acc(found, f"prediction_{m}"),
                           "pixel_error": round(float(sum(errs) / len(errs)), 3) if errs else None}
    return {
        "photos": len(rows),
        "originals": len(usable),
        "problems": len(rows) - len(usable),
        "faces_found": len(found),
        "min_iou": min_iou if annotated else None,
        "accuracy_own_crops": own,
        "accuracy_aligned_crops": aligned,
        "gap": None if own is None or aligned is None else round(aligned - own, 4),
        "accuracy_aligned_all": acc([r for r in usable if r["aligned_prediction"] is not None], "aligned_prediction")
        if annotated else None,
        "framing": framings,
        "accuracy_end_to_end": round(sum(r["found"] and r["own_prediction"] == r["truth"] for r in usable)
                                     / len(usable), 4) if usable else None,
        "definitions": "own crops: eacfer's detector + alignment on the original photo; aligned crops: the "
                       "dataset's aligned image of the same photo; both over the photos whose face was found "
                       "(IoU with the annotated box >= min_iou); gap = aligned - own; end to end: a face not "
                       "found counts as an error",
    }
