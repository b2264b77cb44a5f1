"""Format detection: which layout a dataset folder (or file) uses."""

from __future__ import annotations

import os
from pathlib import Path

from eacfer.data.formats.affectnet import is_affectnet
from eacfer.data.formats.common import LAYOUTS_HELP, _subdirs
from eacfer.data.formats.fer2013 import _find_fer_csv, _is_fer_csv
from eacfer.data.formats.ferplus import _is_ferplus_csv, find_ferplus_csvs, find_ferplus_folders
from eacfer.data.formats.folder import _SPLIT_DIRS, is_plain_tree, names_emotions
from eacfer.data.formats.rafdb import RAFDB_LABEL_FILE


def detect_format(root: str | os.PathLike[str]) -> str:
    """Which of :data:`FORMATS` the dataset at ``root`` uses.

    Raises :class:`ValueError` describing every expected layout when nothing matches.

    Example:
        >>> detect_format("data/RAF-DB")  # doctest: +SKIP
        'rafdb'
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    if root.is_file():
        if _is_ferplus_csv(root):
            return "ferplus"  # fer2013new.csv given: fer2013.csv is looked up beside it
        if _is_fer_csv(root):
            return "fer2013"
        # one line: the file is not a dataset whatever folder layout would have been expected
        raise NotADirectoryError(
            f"{root}: not a folder; the only files --data takes are a FER2013 CSV (emotion,pixels,Usage) "
            "or FERPlus' fer2013new.csv"
        )
    if (root / RAFDB_LABEL_FILE).is_file():
        return "rafdb"
    if is_affectnet(root):
        return "affectnet"
    if find_ferplus_folders(root):
        return "ferplus-folders"
    data = root / "DATASET" if (root / "DATASET").is_dir() else root
    digit_dirs = _subdirs(data / "train")
    if digit_dirs and all(d.name in {str(i) for i in range(1, 8)} for d in digit_dirs):
        return "rafdb-kaggle"
    if find_ferplus_csvs(root) is not None:
        return "ferplus"
    if _find_fer_csv(root) is not None:
        return "fer2013"
    if any(_subdirs(root / s) for s in _SPLIT_DIRS):  # a test/ (or val/) alone is an evaluation set
        return "folder"
    if is_plain_tree(root) and names_emotions(root):  # ROOT/happy/, ROOT/sad/...: labelled photos
        return "folder"
    raise ValueError(f"{root}: unknown dataset layout; a folder of class folders (ROOT/<class>/*.jpg or "
                     f"ROOT/test/<class>/*.jpg) is read with --format folder; {LAYOUTS_HELP}")
