"""Shared pieces of the dataset formats: :class:`Sample`, :class:`SplitData`, problem collection, path checks."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LAYOUTS_HELP = (
    "expected one of these layouts:\n"
    "  rafdb:        ROOT/EmoLabel/list_patition_label.txt and ROOT/Image/aligned/train_00001_aligned.jpg ...\n"
    "  rafdb-kaggle: ROOT/DATASET/{train,test}/{1..7}/*.jpg with ROOT/train_labels.csv, ROOT/test_labels.csv\n"
    "  folder:       ROOT/{train,test}/<class name>/*.jpg; to evaluate your own labelled face crops, "
    "ROOT/test/<class>/*.jpg or ROOT/<class>/*.jpg (--format folder)\n"
    "  fer2013:      ROOT/fer2013.csv (columns emotion,pixels,Usage), or ROOT is that CSV\n"
    "  ferplus:      ROOT/fer2013.csv with Microsoft's ROOT/fer2013new.csv (vote counts) beside it\n"
    "  ferplus-folders: ROOT/FER2013Train/label.csv (+ FER2013Valid/, FER2013Test/) with the PNGs\n"
    "  affectnet:    ROOT/Manually_Annotated_file_lists/{training,validation}.csv and ROOT/Manually_Annotated_Images/"
)
LABEL_MODES: tuple[str, ...] = ("majority", "probability")


@dataclass(frozen=True)
class Sample:
    """One labelled item: ``name`` as the label source spells it, image ``path`` (or decoded ``pixels``).

    ``soft`` is an optional probability target over the classes (FERPlus vote distribution); ``label`` is
    then its argmax.
    """

    name: str
    path: Path | None
    label: int
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)
    soft: tuple[float, ...] | None = field(default=None, repr=False, compare=False)


@dataclass
class SplitData:
    """One split of a dataset: samples with 0-based labels and the problems met while listing them.

    ``label_mode`` is ``majority`` (hard labels) or ``probability`` (samples carry ``soft`` targets);
    ``stats`` counts rows left out on purpose (e.g. ``{"dropped": {"unknown/NF": 12}}``), as opposed to
    ``problems`` (broken entries).
    """

    root: Path
    format: str
    split: str
    class_names: list[str]
    samples: list[Sample]
    problems: list[str] = field(default_factory=list)
    label_mode: str = "majority"
    stats: dict[str, Any] = field(default_factory=dict)

    def labels(self) -> np.ndarray:
        """0-based labels (int64), in sample order."""
        return np.asarray([s.label for s in self.samples], dtype=np.int64)

    def with_labels(self, labels: Sequence[int]) -> SplitData:
        """Same samples with new labels (e.g. after noise injection); the original is unchanged.

        Example:
            >>> noisy = split.with_labels(inject_symmetric_noise(split.labels(), 0.2, 7, seed=0))  # doctest: +SKIP
        """
        labels = [int(x) for x in labels]
        if len(labels) != len(self.samples):
            raise ValueError(f"got {len(labels)} labels for {len(self.samples)} samples")
        k = len(self.class_names)
        bad = [x for x in labels if not 0 <= x < k]
        if bad:
            raise ValueError(f"label {bad[0]} out of range 0..{k - 1}")
        # a new hard label replaces the soft target too (the vote distribution no longer describes it)
        samples = [dataclasses.replace(s, label=y, soft=None) for s, y in zip(self.samples, labels, strict=True)]
        return dataclasses.replace(self, samples=samples, problems=list(self.problems))


class _Problems:
    """Collects problem lines, or raises at the first one under ``strict``."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.lines: list[str] = []

    def add(self, msg: str) -> None:
        if self.strict:
            raise ValueError(msg)
        self.lines.append(msg)


def csv_columns(p: Path) -> set[str]:
    """The lower-cased column names of a CSV file's header line (empty when unreadable).

    Example:
        >>> csv_columns(Path("/nonexistent.csv"))
        set()
    """
    try:
        with open(p, encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline(4096)
    except OSError:
        return set()
    return {c.strip().lower() for c in header.split(",")}


def _subdirs(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_split(split: str, allowed: Sequence[str], fmt: str) -> None:
    if split not in allowed:
        raise ValueError(f"unknown split {split!r} (invalid choice) for {fmt} datasets; use one of: {', '.join(allowed)}")


def _inside(root_real: Path, path: Path) -> bool:
    """Whether ``path`` (after following symlinks and ``..``) stays inside ``root_real``."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(root_real)
    except (OSError, ValueError):
        return False


def _image_sample(
    name: str, path: Path, label: int, root_real: Path, where: str, probs: _Problems
) -> Sample | None:
    if not _inside(root_real, path):
        probs.add(f"{where}: refused, {path} resolves outside the dataset folder {root_real}")
        return None
    try:
        found = path.is_file()
    except OSError as e:  # e.g. a name longer than the file system allows (ENAMETOOLONG)
        probs.add(f"{where}: cannot access image {str(path)[:200]}: {e.strerror or e}")
        return None
    if not found:
        probs.add(f"{where}: image not found: {path}")
        return None
    return Sample(name=name, path=path, label=label)
