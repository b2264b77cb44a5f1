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
* ``ferplus`` / ``ferplus-folders`` — FERPlus vote counts, majority or probability labels, 8 or 7
  classes (:mod:`eacfer.data.formats.ferplus`).
* ``affectnet`` — AffectNet's manually annotated file lists, faces cropped from the boxes into a cache
  (:mod:`eacfer.data.formats.affectnet`).

Which split is the test split (:data:`TEST_SPLITS`, what ``eacfer eval`` reads by default and what
training evaluates every epoch) differs per dataset; :data:`SPLITS` lists every split name.

Every problem (missing image, malformed line, entry escaping ROOT) becomes one ``problems`` line
naming the file and line, or a :class:`ValueError` with that message under ``strict``. Entries whose
path resolves outside ROOT (``..``, symlinks) are always refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from eacfer.data.formats.affectnet import AFFECTNET_CLASSES, AFFECTNET_SPLITS, load_affectnet
from eacfer.data.formats.common import LABEL_MODES, LAYOUTS_HELP, Sample, SplitData, _Problems
from eacfer.data.formats.fer2013 import FER2013_CLASSES, _load_fer2013
from eacfer.data.formats.ferplus import FERPLUS_CLASSES, FERPLUS_SPLITS, load_ferplus, load_ferplus_folders
from eacfer.data.formats.folder import _load_folder, folder_class_names
from eacfer.data.formats.rafdb import RAFDB_LABEL_FILE, _load_kaggle, _load_rafdb
from eacfer.data.formats.sniff import detect_format

__all__ = [
    "AFFECTNET_CLASSES",
    "FERPLUS_CLASSES",
    "LABEL_MODES",
    "SPLITS",
    "TEST_SPLITS",
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

FORMATS: tuple[str, ...] = ("rafdb", "rafdb-kaggle", "folder", "fer2013", "ferplus", "ferplus-folders", "affectnet")
#: split names each format accepts
SPLITS: dict[str, tuple[str, ...]] = {
    "rafdb": ("train", "test"),
    "rafdb-kaggle": ("train", "test"),
    "folder": ("train", "test"),
    "fer2013": ("train", "test", "test-private"),
    "ferplus": FERPLUS_SPLITS,
    "ferplus-folders": FERPLUS_SPLITS,
    "affectnet": AFFECTNET_SPLITS,
}
#: what the ``test`` split is, per format (``eacfer eval`` default, and the per-epoch evaluation of training)
TEST_SPLITS: dict[str, str] = {
    "rafdb": "the test_* images of list_patition_label.txt",
    "rafdb-kaggle": "DATASET/test/",
    "folder": "test/ (or val/, valid/, validation/)",
    "fer2013": "PublicTest rows (test-private = PrivateTest)",
    "ferplus": "PrivateTest rows (validation = PublicTest)",
    "ferplus-folders": "FER2013Test/ (validation = FER2013Valid/)",
    "affectnet": "validation.csv (AffectNet's test set is not public)",
}
TEST_SPLITS_HELP = "; ".join(f"{k}: {v}" for k, v in TEST_SPLITS.items())


def load_split(
    root: str | os.PathLike[str],
    split: str = "train",
    format: str | None = None,
    label_file: str | os.PathLike[str] | None = None,
    strict: bool = False,
    *,
    classes: int | None = None,
    label_mode: str = "majority",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> SplitData:
    """List one split of a dataset (format auto-detected when ``None``).

    Broken entries are skipped with a line in ``problems`` (``ValueError`` under ``strict``);
    raises ``ValueError`` when no usable sample is left. ``classes`` (7 or 8) and ``label_mode``
    (``majority`` or ``probability``) apply to FERPlus (``classes`` also to AffectNet); ``cache_dir`` is
    AffectNet's crop cache (default under ``~/.cache/eacfer``), built with a progress bar when ``progress``.

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
    if label_mode not in LABEL_MODES:
        raise ValueError(f"unknown label mode {label_mode!r}; use {' or '.join(LABEL_MODES)}")
    if label_mode != "majority" and fmt not in ("ferplus", "ferplus-folders"):
        raise ValueError(f"--label-mode {label_mode} needs vote counts (FERPlus), not the {fmt} format")
    if classes is not None and fmt not in ("ferplus", "ferplus-folders", "affectnet"):
        raise ValueError(f"--classes only applies to FERPlus and AffectNet, not the {fmt} format")
    probs = _Problems(strict)
    data = None
    if fmt in ("ferplus", "ferplus-folders"):
        load = load_ferplus if fmt == "ferplus" else load_ferplus_folders
        data = load(root, split, classes, label_mode, probs)
    elif fmt == "affectnet":
        data = load_affectnet(root, split, classes, probs, cache_dir=cache_dir, progress=progress)
    if data is not None:
        classes_, samples = data.class_names, data.samples
    elif fmt == "rafdb":
        classes_, samples = _load_rafdb(root, split, label_file, probs)
    elif fmt == "rafdb-kaggle":
        classes_, samples = _load_kaggle(root, split, label_file, probs)
    elif fmt == "folder":
        classes_, samples = _load_folder(root, split, probs)
    else:
        classes_, samples = _load_fer2013(root, split, probs)
    if not samples:
        first = f"; first problem: {probs.lines[0]}" if probs.lines else ""
        raise ValueError(
            f"{root}: no usable {split!r} samples in {fmt} layout ({len(probs.lines)} problems){first}"
        )
    if probs.lines:  # info only: callers warn once per problem (a summary warning would repeat one of them)
        log.info("%s (%s, %s): %d entries skipped (SplitData.problems)", root, fmt, split, len(probs.lines))
    if data is not None:
        if data.stats.get("dropped"):
            log.info("%s (%s, %s): rows left out on purpose: %s", root, fmt, split, data.stats["dropped"])
        return data
    return SplitData(root=root, format=fmt, split=split, class_names=list(classes_), samples=samples,
                     problems=probs.lines)  # fmt: skip
