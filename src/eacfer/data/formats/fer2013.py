"""``fer2013``: the single Kaggle CSV ``emotion,pixels,Usage`` with 48×48 grayscale pixel strings."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eacfer.data.formats.common import LAYOUTS_HELP, Sample, _check_split, _Problems, csv_columns

FER2013_CLASSES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
_FER_USAGE = {"train": ("Training",), "test": ("PublicTest",), "test-private": ("PrivateTest",)}


def _is_fer_csv(p: Path) -> bool:
    return p.suffix.lower() == ".csv" and {"emotion", "pixels"} <= csv_columns(p)


def _find_fer_csv(root: Path) -> Path | None:
    for cand in (root / "fer2013.csv", root / "fer2013" / "fer2013.csv"):
        if cand.is_file() and _is_fer_csv(cand):
            return cand
    csvs = [p for p in sorted(root.glob("*.csv")) if _is_fer_csv(p)]
    return csvs[0] if len(csvs) == 1 else None


def _load_fer2013(root: Path, split: str, probs: _Problems) -> tuple[Sequence[str], list[Sample]]:
    _check_split(split, tuple(_FER_USAGE), "fer2013")
    path = root if root.is_file() else _find_fer_csv(root)
    if path is None:
        present = [c for c in (root / "fer2013.csv", root / "fer2013" / "fer2013.csv") if c.is_file()]
        if present:  # the file is there but its header is damaged: say so rather than "not found"
            raise ValueError(
                f"{present[0]}: not a FER2013 CSV (the first line must name the columns "
                "emotion,pixels[,Usage])"
            )
        raise FileNotFoundError(f"{root}: no fer2013.csv found; {LAYOUTS_HELP}")
    try:
        return FER2013_CLASSES, _fer_samples(path, split, probs)
    except csv.Error as e:
        raise ValueError(f"{path}: malformed CSV ({e})") from None


def _fer_samples(path: Path, split: str, probs: _Problems) -> list[Sample]:
    usages = _FER_USAGE[split]
    samples = []
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
        if "emotion" not in fields or "pixels" not in fields:
            raise ValueError(f"{path}: not a FER2013 CSV (needs columns emotion,pixels[,Usage])")
        if "usage" not in fields and split != "train":
            raise ValueError(f"{path}: no Usage column, so there is no {split!r} split")
        for row in reader:
            line = reader.line_num
            usage = (row.get(fields["usage"]) or "").strip() if "usage" in fields else "Training"
            if usage not in usages:
                continue
            sample = _fer_row(row, fields, line, path, probs)
            if sample is not None:
                samples.append(sample)
    return samples


def _fer_row(row: dict, fields: dict[str, str], line: int, path: Path, probs: _Problems) -> Sample | None:
    emotion = (row.get(fields["emotion"]) or "").strip()
    if not re.fullmatch(r"[0-9]{1,3}", emotion) or int(emotion) >= len(FER2013_CLASSES):
        probs.add(f"{path}:{line}: emotion must be 0..{len(FER2013_CLASSES) - 1}, got {emotion[:20]!r}")
        return None
    pixels = parse_pixels(row.get(fields["pixels"]) or "")
    if isinstance(pixels, str):
        probs.add(f"{path}:{line}: {pixels}")
        return None
    return Sample(name=f"fer2013_line{line:05d}", path=None, label=int(emotion), pixels=pixels)


def parse_pixels(text: str) -> np.ndarray | str:
    """A FER2013 ``pixels`` string (2304 space-separated 0..255 values, row-major 48×48 grayscale) →
    48×48×3 uint8 RGB (the gray plane repeated), or a one-line reason why it is malformed.

    Example:
        >>> parse_pixels(" ".join(["7"] * 2304)).shape, parse_pixels("1 2 x")
        ((48, 48, 3), 'pixels are not integers')
    """
    try:
        values = np.asarray(text.split(), dtype=np.int64)
    except (ValueError, OverflowError):
        return "pixels are not integers"
    if values.size != 48 * 48 or values.min() < 0 or values.max() > 255:
        return f"expected 2304 pixel values in 0..255, got {values.size}"
    gray = values.astype(np.uint8).reshape(48, 48)
    return np.repeat(gray[:, :, None], 3, axis=2)
