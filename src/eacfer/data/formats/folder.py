"""``folder``: ``ROOT/{train,test}/<class>/*`` trees; a test set alone may be ``ROOT/test/<class>/*`` or a plain
``ROOT/<class>/*`` tree (your own labelled photos: ``eacfer eval --data ROOT --format folder``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from eacfer.constants import RAFDB_CLASSES
from eacfer.data.classes import SYNONYMS
from eacfer.data.formats.common import LAYOUTS_HELP, Sample, _image_sample, _Problems, _subdirs
from eacfer.data.imageio import list_images

# Folder-name spellings (lower case) that name a RAF-DB class (the synonym table of eacfer.data.classes).
_RAF_ALIASES: dict[str, str] = {k: v for k, v in SYNONYMS.items() if v in RAFDB_CLASSES}
_TEST_FALLBACKS = ("val", "valid", "validation")
_SPLIT_DIRS = ("train", "test", *_TEST_FALLBACKS)


def is_plain_tree(root: str | os.PathLike[str]) -> bool:
    """True when ``root`` holds class folders directly (``ROOT/<class>/*``), with no split folder.

    Example:
        >>> is_plain_tree("/nonexistent")
        False
    """
    root = Path(root)
    return bool(_subdirs(root)) and not any((root / s).is_dir() for s in _SPLIT_DIRS)


def names_emotions(root: str | os.PathLike[str]) -> bool:
    """True when every subfolder of ``root`` names an emotion (any spelling of :data:`eacfer.data.classes.SYNONYMS`):
    a plain ``ROOT/<class>/`` tree that auto-detection may take for the ``folder`` format.

    Example:
        >>> names_emotions("/nonexistent")
        False
    """
    dirs = _subdirs(Path(root))
    return bool(dirs) and all(d.name.lower() in SYNONYMS for d in dirs)


def folder_class_names(root: str | os.PathLike[str]) -> list[str]:
    """Class names of a ``folder`` dataset, shared by all its splits (see module docstring).

    Example:
        >>> folder_class_names("data/ferplus")  # doctest: +SKIP
        ['anger', 'contempt', 'disgust', 'fear', 'happiness', 'neutral', 'sadness', 'surprise']
    """
    root = Path(root)
    if is_plain_tree(root):
        names = sorted(d.name for d in _subdirs(root))
    else:
        names = sorted({d.name for s in _SPLIT_DIRS for d in _subdirs(root / s)})
    mapped = [_RAF_ALIASES.get(n.lower()) for n in names]
    if names and all(mapped) and len(set(mapped)) == len(mapped):
        return [c for c in RAFDB_CLASSES if c in set(mapped)]
    return names


def _load_folder(root: Path, split: str, probs: _Problems) -> tuple[Sequence[str], list[Sample]]:
    split_dir = root / split
    if not split_dir.is_dir() and split == "test":
        split_dir = next((root / s for s in _TEST_FALLBACKS if (root / s).is_dir()), split_dir)
        if is_plain_tree(root):  # ROOT/<class>/*: a test set of its own
            split_dir = root
    if not split_dir.is_dir():
        plain = " (a plain ROOT/<class>/ tree is a test set only)" if is_plain_tree(root) else ""
        raise FileNotFoundError(f"{root / split}: split folder not found{plain}; {LAYOUTS_HELP}")
    classes = folder_class_names(root)
    index = {c: i for i, c in enumerate(classes)}
    root_real = Path(os.path.realpath(root))
    samples = []
    for d in _subdirs(split_dir):
        label = index.get(d.name, index.get(_RAF_ALIASES.get(d.name.lower(), ""), -1))
        if label < 0:
            probs.add(f"{d}: class folder not present in train/test, ignored")
            continue
        for p in list_images(d, recursive=True):
            name = p.relative_to(split_dir).as_posix()
            s = _image_sample(name, p, label, root_real, str(p), probs)
            if s is not None:
                samples.append(s)
    stray = [p for p in list_images(split_dir, recursive=False)]
    if stray:
        probs.add(f"{split_dir}: {len(stray)} images outside class folders ignored, e.g. {stray[0].name}")
    return classes, samples
