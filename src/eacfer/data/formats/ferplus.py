"""FERPlus (Barsoum et al., ICMI 2016, arXiv:1608.01041): FER2013's images with Microsoft's 10-annotator votes.

Two layouts, both as distributed:

* ``ferplus`` — Kaggle's ``fer2013.csv`` (``emotion,pixels,Usage``) plus Microsoft's ``fer2013new.csv``
  (``Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF``), which has
  the same rows in the same order (github.com/microsoft/FERPlus README). Rows with an empty ``Image name``
  are images FERPlus removed as not-a-face; like the official ``generate_training_data.py`` they are skipped
  (counted in ``stats["dropped"]["no image name"]``).
* ``ferplus-folders`` — the output of ``generate_training_data.py``: ``ROOT/FER2013Train/``,
  ``FER2013Valid/``, ``FER2013Test/``, each with its PNGs and a header-less ``label.csv`` of
  ``image name,<10 vote counts>`` (an older variant with a ``"(0, 0, 48, 48)"`` face-box column after the
  name is read too).

Splits: Training / FER2013Train → ``train``, PublicTest / FER2013Valid → ``validation``, PrivateTest /
FER2013Test → ``test`` (the split FERPlus results, EAC's included, are reported on).

Labels (:func:`vote_target`, a transcription of ``_process_data`` and ``load_folders`` in the official
``src/ferplus.py``): votes of 1 are first removed as outliers; then

* ``majority`` — the winner must hold *more than half* of the remaining votes, otherwise the image is
  dropped (so every tie is dropped, and so is an image whose votes were all outliers);
* ``probability`` — the paper's "cross-entropy" scheme: the top emotions are taken in order of votes
  (ties together) until they cover 75 % of the votes or 3 emotions; the image is dropped when they
  cover no more than half, or more than 3 emotions tie; the target is their normalised vote share.

In both modes an image whose (first) winner is ``unknown`` or ``NF`` is dropped, and the target is
renormalised over the 8 emotions. The official ``train.py`` evaluates validation and test in majority
mode whatever the training mode, so only the ``train`` split carries soft targets here. ``classes=7``
drops contempt: images whose winner is contempt are dropped, the others' targets renormalised over 7.
48×48 grayscale pixels become 3-channel RGB (gray repeated); resizing to the model's input size happens
in the transforms (Pillow bilinear, like every other dataset).
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path

import numpy as np

from eacfer.data.formats.common import (
    LAYOUTS_HELP,
    Sample,
    SplitData,
    _check_split,
    _image_sample,
    _Problems,
    csv_columns,
)
from eacfer.data.formats.fer2013 import _find_fer_csv, parse_pixels

FERPLUS_CLASSES: tuple[str, ...] = (
    "Neutral", "Happiness", "Surprise", "Sadness", "Anger", "Disgust", "Fear", "Contempt",
)  # fmt: skip
VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)  # fmt: skip
FERPLUS_SPLITS: tuple[str, ...] = ("train", "validation", "test")
FERPLUS_LABELS = "fer2013new.csv"
_USAGE = {"train": "Training", "validation": "PublicTest", "test": "PrivateTest"}
_FOLDERS = {"train": "FER2013Train", "validation": "FER2013Valid", "test": "FER2013Test"}
_CONTEMPT = 7


def vote_target(votes: Sequence[float], mode: str = "majority") -> tuple[np.ndarray | None, str | None]:
    """The 8-emotion target of one image's 10 vote counts, or ``(None, reason)`` when FERPlus drops it.

    ``reason`` is ``"no majority"`` (no strict majority / too spread) or ``"unknown/NF"``.

    Example:
        >>> vote_target([6, 0, 0, 2, 2, 0, 0, 0, 0, 0])[0].tolist()          # 6 of 10: majority
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        >>> vote_target([4, 0, 0, 4, 2, 0, 0, 0, 0, 0])                      # tie: dropped
        (None, 'no majority')
        >>> vote_target([4, 0, 0, 4, 2, 0, 0, 0, 0, 0], "probability")[0].tolist()  # 8 of 10 votes ≥ 75 %
        [0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    """
    raw = [float(v) for v in votes]
    if len(raw) != len(VOTE_COLUMNS):
        raise ValueError(f"expected {len(VOTE_COLUMNS)} vote counts, got {len(raw)}")
    size = len(raw)
    # official: "remove emotions with a single vote (outlier removal)"
    raw = [0.0 if v < 1.0 + np.finfo(float).eps else v for v in raw]
    total = sum(raw)
    emotion = [0.0] * size
    if mode == "majority":
        peak = max(raw)
        if not peak > 0.5 * total:
            return None, "no majority"
        emotion[int(np.argmax(raw))] = peak
    elif mode == "probability":
        taken, count, valid = 0.0, 0, True
        while taken < 0.75 * total and count < 3 and valid:
            peak = max(raw)
            for i in range(size):
                if raw[i] == peak:
                    emotion[i] = peak
                    raw[i] = 0.0
                    taken += emotion[i]
                    count += 1
                    if i >= 8:  # unknown or NF among the tied maxima: stop here
                        valid = False
                        if sum(emotion) > peak:  # emotions came before it: leave unknown/NF out
                            emotion[i] = 0.0
                            count -= 1
                        break
        if sum(emotion) <= 0.5 * total or count > 3:
            return None, "no majority"
    else:
        raise ValueError(f"unknown label mode {mode!r}; use majority or probability")
    if int(np.argmax(emotion)) >= 8:
        return None, "unknown/NF"
    target = np.asarray(emotion[:8], dtype=np.float64)
    return target / target.sum(), None


def _target_for(votes: Sequence[float], mode: str, k: int) -> tuple[np.ndarray | None, str | None]:
    target, reason = vote_target(votes, mode)
    if target is None:
        return None, reason
    if k == 7:
        if int(np.argmax(target)) == _CONTEMPT:
            return None, "Contempt (7 classes)"
        target = target[:_CONTEMPT]
        target = target / target.sum()
    return target, None


def _parse_votes(cells: Sequence[str]) -> list[float] | None:
    if len(cells) != len(VOTE_COLUMNS):
        return None
    out = []
    for c in cells:
        c = c.strip()
        if not re.fullmatch(r"[0-9]{1,4}(\.[0-9]*)?", c):
            return None
        out.append(float(c))
    return out


def ferplus_classes(classes: int | None) -> list[str]:
    """FERPlus class names for ``classes`` = 8 (default, with contempt) or 7.

    Example:
        >>> ferplus_classes(7)[-1]
        'Fear'
    """
    k = 8 if classes is None else int(classes)
    if k not in (7, 8):
        raise ValueError(f"FERPlus has 8 classes (7 without contempt), not {k}")
    return list(FERPLUS_CLASSES[:k])


def find_ferplus_csvs(root: Path) -> tuple[Path, Path] | None:
    """``(fer2013.csv, fer2013new.csv)`` for a folder holding both, or for either file given directly."""
    if root.is_file():
        if _is_ferplus_csv(root):
            fer = _find_fer_csv(root.parent)
            return (fer, root) if fer is not None else None
        new = root.parent / FERPLUS_LABELS
        return (root, new) if new.is_file() and _is_ferplus_csv(new) else None
    fer = _find_fer_csv(root)
    if fer is None:
        return None
    for cand in (root / FERPLUS_LABELS, fer.parent / FERPLUS_LABELS):
        if cand.is_file() and _is_ferplus_csv(cand):
            return fer, cand
    return None


def _is_ferplus_csv(p: Path) -> bool:
    return {"usage", "image name", "neutral", "nf"} <= csv_columns(p)


def load_ferplus(root: Path, split: str, classes: int | None, mode: str, probs: _Problems) -> SplitData:
    """One split of the ``ferplus`` CSV pair (see the module docstring)."""
    _check_split(split, FERPLUS_SPLITS, "ferplus")
    found = find_ferplus_csvs(root)
    if found is None:
        raise FileNotFoundError(f"{root}: needs fer2013.csv and {FERPLUS_LABELS} side by side; {LAYOUTS_HELP}")
    fer_path, new_path = found
    names = ferplus_classes(classes)
    mode = mode if split == "train" else "majority"
    try:
        samples, dropped = _csv_samples(fer_path, new_path, split, len(names), mode, probs)
    except csv.Error as e:
        raise ValueError(f"{fer_path} / {new_path}: malformed CSV ({e})") from None
    return _split(root, "ferplus", split, names, samples, probs, mode, dropped)


def _split(root, fmt, split, names, samples, probs, mode, dropped) -> SplitData:
    return SplitData(root=root, format=fmt, split=split, class_names=names, samples=samples, problems=probs.lines,
                     label_mode=mode, stats={"dropped": dict(sorted(dropped.items()))})  # fmt: skip


def _header_index(path: Path, header: list[str] | None, needed: Sequence[str]) -> dict[str, int]:
    cols = {c.strip().lower(): i for i, c in enumerate(header or [])}
    missing = [c for c in needed if c.lower() not in cols]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} in the header line")
    return {c: cols[c.lower()] for c in needed}


def _csv_samples(fer_path: Path, new_path: Path, split: str, k: int, mode: str, probs: _Problems):
    usage = _USAGE[split]
    samples: list[Sample] = []
    dropped: Counter[str] = Counter()
    with (
        open(fer_path, encoding="utf-8-sig", errors="replace", newline="") as f_fer,
        open(new_path, encoding="utf-8-sig", errors="replace", newline="") as f_new,
    ):
        r_fer, r_new = csv.reader(f_fer), csv.reader(f_new)
        i_fer = _header_index(fer_path, next(r_fer, None), ("pixels", "Usage"))
        i_new = _header_index(new_path, next(r_new, None), ("Usage", "Image name", *VOTE_COLUMNS))
        for row_num, (row_f, row_n) in enumerate(zip_longest(r_fer, r_new), start=1):
            if row_f is None or row_n is None:
                longer, shorter = (new_path, fer_path) if row_f is None else (fer_path, new_path)
                raise ValueError(f"{longer}: has more rows than {shorter.name}; fer2013.csv and fer2013new.csv "
                                 "must list the same images in the same order")
            where = f"{new_path}:{r_new.line_num}"
            if len(row_n) <= max(i_new.values()) or len(row_f) <= max(i_fer.values()):
                probs.add(f"{where}: too few columns (row {row_num} of {fer_path.name} / {new_path.name})")
                continue
            if row_n[i_new["Usage"]].strip() != usage:
                continue
            if row_f[i_fer["Usage"]].strip() != usage:
                probs.add(f"{where}: Usage {row_n[i_new['Usage']].strip()!r} but {fer_path.name} row {row_num} "
                          f"says {row_f[i_fer['Usage']].strip()!r} (files out of order?)")
                continue
            name = row_n[i_new["Image name"]].strip()
            if not name:
                dropped["no image name"] += 1
                continue
            votes = _parse_votes([row_n[i_new[c]] for c in VOTE_COLUMNS])
            if votes is None:
                probs.add(f"{where}: vote counts are not 10 non-negative numbers")
                continue
            target, reason = _target_for(votes, mode, k)
            if target is None:
                dropped[str(reason)] += 1
                continue
            pixels = parse_pixels(row_f[i_fer["pixels"]])
            if isinstance(pixels, str):
                probs.add(f"{fer_path}:{r_fer.line_num}: {pixels}")
                continue
            samples.append(_sample(name, None, target, mode, pixels))
    return samples, dropped


def _sample(name: str, path: Path | None, target: np.ndarray, mode: str, pixels: np.ndarray | None) -> Sample:
    soft = tuple(float(v) for v in target) if mode == "probability" else None
    return Sample(name=name, path=path, label=int(np.argmax(target)), pixels=pixels, soft=soft)


def find_ferplus_folders(root: Path) -> bool:
    """Whether ``root`` holds the FERPlus folder export (``FER2013Train/label.csv`` or a sibling)."""
    return root.is_dir() and any((root / d / "label.csv").is_file() for d in _FOLDERS.values())


def load_ferplus_folders(root: Path, split: str, classes: int | None, mode: str, probs: _Problems) -> SplitData:
    """One split of the ``ferplus-folders`` export (see the module docstring)."""
    _check_split(split, FERPLUS_SPLITS, "ferplus-folders")
    folder = root / _FOLDERS[split]
    label_csv = folder / "label.csv"
    if not label_csv.is_file():
        raise FileNotFoundError(f"{label_csv}: not found; {LAYOUTS_HELP}")
    names = ferplus_classes(classes)
    mode = mode if split == "train" else "majority"
    root_real = Path(os.path.realpath(root))
    samples: list[Sample] = []
    dropped: Counter[str] = Counter()
    try:
        with open(label_csv, encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.reader(fh)
            for row in reader:
                where = f"{label_csv}:{reader.line_num}"
                if not row or all(not c.strip() for c in row):
                    continue
                cells = row[2:] if len(row) == 12 and row[1].strip().startswith("(") else row[1:]
                votes = _parse_votes(cells)
                if votes is None:
                    if reader.line_num == 1 and not any(c.strip().isdigit() for c in cells):
                        continue  # a header line
                    probs.add(f"{where}: expected an image name and 10 vote counts")
                    continue
                target, reason = _target_for(votes, mode, len(names))
                if target is None:
                    dropped[str(reason)] += 1
                    continue
                name = row[0].strip()
                s = _image_sample(name, folder / name, 0, root_real, where, probs)
                if s is not None:
                    samples.append(_sample(name, s.path, target, mode, None))
    except csv.Error as e:
        raise ValueError(f"{label_csv}: malformed CSV ({e})") from None
    return _split(root, "ferplus-folders", split, names, samples, probs, mode, dropped)
