"""Dataset layouts on disk → :class:`SplitData` (names, paths, 0-based labels); no pixel decoding here.

Formats (``FORMATS``):

* ``rafdb`` — the official release: ``ROOT/EmoLabel/list_patition_label.txt`` +
  ``ROOT/Image/aligned/NAME_aligned.jpg``. ``label_file`` (a path, or a file name inside ``EmoLabel/``)
  replaces the *train* labels only; test labels always come from the clean file.
* ``rafdb-kaggle`` — the Kaggle re-packaging (``shuvoalok/raf-db-dataset``): ``ROOT/DATASET/{train,test}/{1..7}/
  *_aligned.jpg`` with ``ROOT/{train,test}_labels.csv`` (``image,label``, 1-based). ``ROOT`` may also be
  ``DATASET`` itself. The CSV, when present, is the label source; otherwise the 1..7 folder names are.
* ``folder`` — ``ROOT/{train,test}/<class>/*`` (FERPlus/AffectNet exports...). Class names are the
  folder names, sorted, unless they all name RAF-DB classes (case-insensitively, common spellings
  such as ``happy``/``angry`` included): then RAF-DB's order and names are used. ``test`` falls back
  to ``val``/``valid``/``validation``.
* ``fer2013`` — the single CSV ``emotion,pixels,Usage`` (``ROOT/fer2013.csv`` or ``ROOT`` is the CSV):
  ``train`` = Training, ``test`` = PublicTest, ``test-private`` = PrivateTest; 48×48 pixels are decoded
  into ``Sample.pixels`` (RGB uint8).

Every problem (missing image, malformed line, entry escaping ROOT) becomes one ``problems`` line
naming the file and line, or a :class:`ValueError` with that message under ``strict``. Entries whose
path resolves outside ROOT (``..``, symlinks) are always refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from eacfer.data.formats.common import LAYOUTS_HELP, Sample, SplitData, _Problems
from eacfer.data.formats.detect import detect_format
from eacfer.data.formats.fer2013 import FER2013_CLASSES, _load_fer2013
from eacfer.data.formats.folder import _load_folder, folder_class_names
from eacfer.data.formats.rafdb import RAFDB_LABEL_FILE, _load_kaggle, _load_rafdb

__all__ = [
    "FER2013_CLASSES",
    "FORMATS",
    "LAYOUTS_HELP",
    "RAFDB_LABEL_FILE",
    "Sample",
    "SplitData",
    "detect_format",
    "folder_class_names",
    "load_split",
]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("rafdb", "rafdb-kaggle", "folder", "fer2013")


def load_split(
    root: str | os.PathLike[str],
    split: str = "train",
    format: str | None = None,
    label_file: str | os.PathLike[str] | None = None,
    strict: bool = False,
) -> SplitData:
    """List one split of a dataset (format auto-detected when ``None``).

    Broken entries are skipped with a line in ``problems`` (``ValueError`` under ``strict``);
    raises ``ValueError`` when no usable sample is left.

    Example:
        >>> train = load_split("data/RAF-DB", "train", label_file="noise02.txt")  # doctest: +SKIP
        >>> len(train.samples), train.class_names[:2]                             # doctest: +SKIP
        (12271, ['Surprise', 'Fear'])
    """
    root = Path(root)
    fmt = format or detect_format(root)
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; known: {', '.join(FORMATS)}")
    if label_file is not None and fmt not in ("rafdb", "rafdb-kaggle"):
        raise ValueError(f"a label file can only replace RAF-DB train labels, not {fmt} labels")
    probs = _Problems(strict)
    if fmt == "rafdb":
        classes, samples = _load_rafdb(root, split, label_file, probs)
    elif fmt == "rafdb-kaggle":
        classes, samples = _load_kaggle(root, split, label_file, probs)
    elif fmt == "folder":
        classes, samples = _load_folder(root, split, probs)
    else:
        classes, samples = _load_fer2013(root, split, probs)
    if not samples:
        first = f"; first problem: {probs.lines[0]}" if probs.lines else ""
        raise ValueError(
            f"{root}: no usable {split!r} samples in {fmt} layout ({len(probs.lines)} problems){first}"
        )
    if probs.lines:
        log.warning(
            "%s (%s, %s): %d entries skipped, e.g. %s", root, fmt, split, len(probs.lines), probs.lines[0]
        )
    return SplitData(root=root, format=fmt, split=split, class_names=list(classes), samples=samples,
                     problems=probs.lines)  # fmt: skip
