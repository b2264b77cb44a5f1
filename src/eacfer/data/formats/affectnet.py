"""``affectnet``: AffectNet as distributed (Mollahosseini et al., 2017), manually annotated part.

``ROOT/Manually_Annotated_file_lists/training.csv`` and ``validation.csv`` with the columns
``subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression, valence,
arousal``; images under ``ROOT/Manually_Annotated_Images/<subDirectory_filePath>``.

``expression`` codes 0–10 are Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt, None,
Uncertain, No-Face. AffectNet-8 (default) keeps 0–7, AffectNet-7 (``classes=7``) keeps 0–6; the other rows
are dropped and counted per code name in ``stats["dropped"]``. Splits: ``train`` = training.csv,
``test`` = validation.csv (AffectNet's test set is not public, so its validation set is the usual test
set; ``validation`` is accepted as a synonym).

Faces are cropped from the box (:mod:`eacfer.data.facecrops`: the inference margin convention) into a
cache on the first use, with a progress bar; a killed pass resumes; later runs read only the crops.
A row whose image is missing, whose box is malformed or outside the image, or whose path leaves ROOT
(after following links) or whose crop would land outside the cache folder is a counted problem (strict:
an error naming ``FILE:LINE``), never a crash and never a write outside the cache. The widespread Kaggle re-packaging (``train/<class>/``, ``val/<class>/``
folders of already-cropped faces) is read by the ``folder`` format.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path

from eacfer.data.facecrops import DEFAULT_CROP_SIZE, DEFAULT_MARGIN, CropJob, cache_crops, default_cache_dir
from eacfer.data.formats.common import LAYOUTS_HELP, Sample, SplitData, _check_split, _inside, _Problems

AFFECTNET_CLASSES: tuple[str, ...] = (
    "Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
)  # fmt: skip
#: every expression code's name as AffectNet's paper spells it
AFFECTNET_CODES: tuple[str, ...] = (
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt", "None", "Uncertain", "No-Face",
)  # fmt: skip
AFFECTNET_SPLITS: tuple[str, ...] = ("train", "test", "validation")
LISTS = "Manually_Annotated_file_lists"
IMAGES = "Manually_Annotated_Images"
_CSV = {"train": "training.csv", "test": "validation.csv", "validation": "validation.csv"}
_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression")
_NUM = re.compile(r"-?[0-9]{1,7}(\.[0-9]*)?")


def is_affectnet(root: Path) -> bool:
    """Whether ``root`` holds AffectNet's file lists."""
    return root.is_dir() and any((root / LISTS / f).is_file() for f in ("training.csv", "validation.csv"))


def load_affectnet(
    root: Path,
    split: str,
    classes: int | None,
    probs: _Problems,
    cache_dir: str | os.PathLike[str] | None = None,
    crop_size: int = DEFAULT_CROP_SIZE,
    progress: bool = True,
) -> SplitData:
    """One split of AffectNet, its faces cropped into the cache (see the module docstring)."""
    _check_split(split, AFFECTNET_SPLITS, "affectnet")
    k = 8 if classes is None else int(classes)
    if k not in (7, 8):
        raise ValueError(f"AffectNet is read with 7 or 8 classes, not {k}")
    path = root / LISTS / _CSV[split]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; {LAYOUTS_HELP}")
    root_real = Path(os.path.realpath(root))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(root, crop_size, DEFAULT_MARGIN)
    rows, dropped = _read_rows(path, k, root, root_real, probs)
    cache_real = Path(os.path.realpath(cache))
    safe_rows = []
    for row in rows:  # the write target is checked too: "a/../../x.jpg" may stay in ROOT yet leave the cache
        rel, where = row[0], row[4]
        if not _inside(cache_real, cache / _crop_name(rel)):
            probs.add(f"{where}: refused, the crop of {rel} would be written outside the crop cache {cache_real}")
            continue
        safe_rows.append(row)
    rows = safe_rows
    jobs = [CropJob(src, box, cache / _crop_name(rel)) for rel, src, box, _, _ in rows]
    failed = cache_crops(jobs, size=crop_size, margin=DEFAULT_MARGIN, progress=progress)
    samples = []
    for i, (rel, _, _, label, where) in enumerate(rows):
        if i in failed:
            probs.add(f"{where}: {failed[i]}")
            continue
        samples.append(Sample(name=rel, path=jobs[i].target, label=label))
    stats = {"dropped": dict(sorted(dropped.items())), "crop_cache": str(cache), "crop_size": crop_size,
             "crop_margin": DEFAULT_MARGIN}  # fmt: skip
    return SplitData(root=root, format="affectnet", split=split, class_names=list(AFFECTNET_CLASSES[:k]),
                     samples=samples, problems=probs.lines, stats=stats)  # fmt: skip


def _crop_name(rel: str) -> str:
    return rel if rel.lower().endswith((".jpg", ".jpeg")) else rel + ".jpg"


def _read_rows(path: Path, k: int, root: Path, root_real: Path, probs: _Problems):
    rows = []
    dropped: Counter[str] = Counter()
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            cols = {c.strip().lower(): i for i, c in enumerate(header or [])}
            missing = [c for c in _COLUMNS if c.lower() not in cols]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)} in the header line")
            idx = {c: cols[c.lower()] for c in _COLUMNS}
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not row or all(not c.strip() for c in row):
                    continue
                parsed = _parse_row(row, idx)
                if isinstance(parsed, str):
                    probs.add(f"{where}: {parsed}")
                    continue
                rel, box, code = parsed
                if code >= k:
                    dropped[AFFECTNET_CODES[code]] += 1
                    continue
                src = root / IMAGES / rel
                if not _inside(root_real, src):
                    probs.add(f"{where}: refused, {rel} resolves outside the dataset folder {root_real}")
                    continue
                if not src.is_file():
                    probs.add(f"{where}: image not found: {src}")
                    continue
                rows.append((rel, src, box, code, where))
    except csv.Error as e:
        raise ValueError(f"{path}: malformed CSV ({e})") from None
    return rows, dropped


def _parse_row(row: list[str], idx: dict[str, int]):
    if len(row) <= max(idx.values()):
        return f"expected at least {max(idx.values()) + 1} columns, got {len(row)}"
    rel = row[idx["subDirectory_filePath"]].strip().replace("\\", "/")
    if not rel or rel.startswith("/") or "\x00" in rel:
        return f"bad image path {rel[:80]!r}"
    cells = [row[idx[c]].strip() for c in ("face_x", "face_y", "face_width", "face_height")]
    if not all(_NUM.fullmatch(c) for c in cells):
        return f"face box is not four numbers: {cells}"
    x, y, w, h = (float(c) for c in cells)
    if w <= 0 or h <= 0:
        return f"empty face box {cells}"
    code = row[idx["expression"]].strip()
    if not re.fullmatch(r"[0-9]{1,2}", code) or int(code) >= len(AFFECTNET_CODES):
        return f"expression must be 0..{len(AFFECTNET_CODES) - 1}, got {code[:20]!r}"
    return rel, (x, y, w, h), int(code)
