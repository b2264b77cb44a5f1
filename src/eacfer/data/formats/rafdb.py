"""RAF-DB: the official release (``rafdb``) and the Kaggle re-packaging (``rafdb-kaggle``)."""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eacfer.constants import RAFDB_CLASSES
from eacfer.data.formats.common import LAYOUTS_HELP, Sample, _check_split, _image_sample, _Problems, _subdirs
from eacfer.data.imageio import list_images
from eacfer.data.labels import LabelEntry, name_problem, parse_label_file

log = logging.getLogger(__name__)

RAFDB_LABEL_FILE = "EmoLabel/list_patition_label.txt"


def _resolve_label_file(root: Path, label_file: str | os.PathLike[str]) -> Path:
    p = Path(label_file)
    inside = root / "EmoLabel" / p
    if not p.is_absolute() and len(p.parts) == 1 and inside.is_file():
        return inside  # a bare name means the dataset's own EmoLabel/noise0X.txt first
    if p.is_file():
        return p
    raise FileNotFoundError(f"{label_file}: label file not found (also looked in {root / 'EmoLabel'})")


def _train_labels_from(root: Path, label_file: str | os.PathLike[str], probs: _Problems) -> list[LabelEntry]:
    lf_path = _resolve_label_file(root, label_file)
    lf = parse_label_file(lf_path, num_classes=len(RAFDB_CLASSES), strict=probs.strict)
    for p in lf.problems:
        probs.add(p)
    entries = [e for e in lf.entries if e.name.startswith("train_")]
    if not entries:
        raise ValueError(f"{lf_path}: no train_ entries, cannot use it as train labels")
    log.info("train labels from %s (%d entries)", lf_path, len(entries))
    return entries


def _load_rafdb(root: Path, split: str, label_file, probs: _Problems) -> tuple[Sequence[str], list[Sample]]:
    _check_split(split, ("train", "test"), "rafdb")
    clean = root / RAFDB_LABEL_FILE
    if not clean.is_file():
        raise FileNotFoundError(f"{clean}: RAF-DB label file not found; {LAYOUTS_HELP}")
    if split == "train" and label_file is not None:
        entries, src = _train_labels_from(root, label_file, probs), _resolve_label_file(root, label_file)
    else:
        lf = parse_label_file(clean, num_classes=len(RAFDB_CLASSES), strict=probs.strict)
        for p in lf.problems:
            probs.add(p)
        entries, src = [e for e in lf.entries if e.name.startswith(f"{split}_")], clean
    root_real = Path(os.path.realpath(root))
    img_dir = root / "Image" / "aligned"
    samples = []
    for e in entries:
        stem, ext = os.path.splitext(e.name)
        s = _image_sample(
            e.name, img_dir / f"{stem}_aligned{ext}", e.label, root_real, f"{src}:{e.line}", probs
        )
        if s is not None:
            samples.append(s)
    return RAFDB_CLASSES, samples


def _aligned_key(name: str) -> str:
    """``train_00001_aligned.jpg`` and ``train_00001.jpg`` → ``train_00001`` (label files use both)."""
    stem = os.path.splitext(name)[0]
    return stem[: -len("_aligned")] if stem.endswith("_aligned") else stem


def _kaggle_paths(root: Path) -> tuple[Path, list[Path]]:
    if (root / "DATASET").is_dir():
        return root / "DATASET", [root, root / "DATASET"]
    return root, [root, root.parent]


def _load_kaggle(root: Path, split: str, label_file, probs: _Problems) -> tuple[Sequence[str], list[Sample]]:
    _check_split(split, ("train", "test"), "rafdb-kaggle")
    data, csv_dirs = _kaggle_paths(root)
    split_dir = data / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: split folder not found; {LAYOUTS_HELP}")
    root_real = Path(os.path.realpath(root))
    # Index every image by file name: the CSV names files, the class folder is implied.
    found: dict[str, tuple[Path, int | None]] = {}
    for d in _subdirs(split_dir):
        folder_label = int(d.name) - 1 if d.name in {str(i) for i in range(1, 8)} else None
        if folder_label is None:
            probs.add(f"{d}: folder name is not a class number 1..7, ignored")
            continue
        for p in list_images(d, recursive=False):
            found.setdefault(p.name, (p, folder_label))
    csv_path = next(
        (c / f"{split}_labels.csv" for c in csv_dirs if (c / f"{split}_labels.csv").is_file()), None
    )
    if csv_path is not None:
        rows = _read_label_csv(csv_path, probs)
    else:
        rows = [(name, lab, 0) for name, (_, lab) in sorted(found.items()) if lab is not None]
    if split == "train" and label_file is not None:
        override = {_aligned_key(e.name): e for e in _train_labels_from(root, label_file, probs)}
        rows = [(n, override[_aligned_key(n)].label, ln) for n, _, ln in rows if _aligned_key(n) in override]
    where_of = (lambda ln: f"{csv_path}:{ln}") if csv_path is not None else (lambda ln: str(split_dir))
    samples, used = [], set()
    for name, label, line in rows:
        hit = found.get(name)
        if hit is None:
            path, folder_label = split_dir / str(label + 1) / name, label
        else:
            path, folder_label = hit
        if folder_label != label and label_file is None:
            log.debug(
                "%s: %s is in folder %d but labelled %d", where_of(line), name, folder_label + 1, label + 1
            )
        s = _image_sample(name, path, label, root_real, where_of(line), probs)
        if s is not None:
            samples.append(s)
            used.add(name)
    unlisted = len(set(found) - used)
    if csv_path is not None and unlisted:
        log.info(
            "%s: %d images in class folders are not listed in %s and were ignored",
            split_dir,
            unlisted,
            csv_path,
        )
    return RAFDB_CLASSES, samples


def _read_label_csv(path: Path, probs: _Problems) -> list[tuple[str, int, int]]:
    """``image,label`` rows (1-based labels) → ``(name, 0-based label, line)``."""
    try:
        return _read_label_csv_rows(path, probs)
    except csv.Error as e:  # e.g. an over-long field: the reader cannot resynchronise, so stop here
        raise ValueError(f"{path}: malformed CSV ({e})") from None


def _read_label_csv_rows(path: Path, probs: _Problems) -> list[tuple[str, int, int]]:
    rows: list[tuple[str, int, int]] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        cols = [c.strip().lower() for c in header] if header else []
        if "image" in cols and "label" in cols:
            i_name, i_label = cols.index("image"), cols.index("label")
        else:  # headerless "name,label" rows
            i_name, i_label = 0, 1
            fh.seek(0)
            reader = csv.reader(fh)
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(i_name, i_label):
                probs.add(f"{path}:{line}: expected columns image,label, got {len(row)} columns")
                continue
            name, label = row[i_name].strip(), row[i_label].strip()
            bad = name_problem(name)
            if bad is None and not re.fullmatch(r"[0-9]{1,9}", label):
                bad = f"label is not an integer: {label[:20]!r}"
            elif bad is None and not 1 <= int(label) <= len(RAFDB_CLASSES):
                bad = f"label {int(label)} out of range 1..{len(RAFDB_CLASSES)}"
            elif bad is None and name in seen:
                bad = f"duplicate name {name!r} (first on line {seen[name]})"
            if bad is not None:
                probs.add(f"{path}:{line}: {bad}")
                continue
            seen[name] = line
            rows.append((name, int(label) - 1, line))
    return rows


def original_files(root: str | os.PathLike[str], name: str) -> tuple[Path, Path, Path]:
    """RAF-DB's original photo of label-file entry ``name`` and its annotation files:
    ``(Image/original/NAME, Annotation/boundingbox/STEM_boundingbox.txt, Annotation/manual/STEM_manu_attri.txt)``.

    Example:
        >>> [p.as_posix() for p in original_files("R", "test_0001_aligned.jpg")][1]
        'R/Annotation/boundingbox/test_0001_boundingbox.txt'
    """
    root = Path(root)
    stem = _aligned_key(name)
    ext = os.path.splitext(name)[1] or ".jpg"
    return (root / "Image" / "original" / f"{stem}{ext}", root / "Annotation" / "boundingbox" / f"{stem}_boundingbox.txt",
            root / "Annotation" / "manual" / f"{stem}_manu_attri.txt")


def read_boundingbox(path: str | os.PathLike[str]) -> tuple[float, float, float, float]:
    """A RAF-DB ``*_boundingbox.txt``: ``x1 y1 x2 y2`` (whitespace-separated) → the box; ValueError names the file.

    Example:
        >>> read_boundingbox("Annotation/boundingbox/test_0001_boundingbox.txt")  # doctest: +SKIP
        (353.58, 195.39, 461.24, 318.8)
    """
    import math

    text = Path(path).read_text(encoding="utf-8", errors="replace").split()
    try:
        v = [float(t) for t in text]
    except ValueError:
        v = []
    if len(v) != 4 or not all(math.isfinite(x) for x in v) or v[2] <= v[0] or v[3] <= v[1]:
        raise ValueError(f"{path}: expected a face box 'x1 y1 x2 y2' with x2 > x1 and y2 > y1")
    return v[0], v[1], v[2], v[3]


def read_manual_landmarks(path: str | os.PathLike[str]) -> np.ndarray:
    """The five landmarks (5×2: eye centres, nose tip, mouth corners) of a RAF-DB ``*_manu_attri.txt``
    (five ``x y`` lines, then gender, race and age lines); ValueError names the file.

    Example:
        >>> read_manual_landmarks("Annotation/manual/test_0001_manu_attri.txt").shape  # doctest: +SKIP
        (5, 2)
    """
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        pts = np.array([[float(t) for t in ln.split()] for ln in lines[:5]], dtype=np.float64)
    except ValueError:
        pts = np.zeros((0,))
    if pts.shape != (5, 2) or not np.isfinite(pts).all():
        raise ValueError(f"{path}: expected five landmark lines 'x y' first")
    return pts
