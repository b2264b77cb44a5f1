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

import csv
import dataclasses
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eacfer.constants import RAFDB_CLASSES
from eacfer.data.imageio import list_images
from eacfer.data.labels import LabelEntry, name_problem, parse_label_file

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("rafdb", "rafdb-kaggle", "folder", "fer2013")
FER2013_CLASSES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
RAFDB_LABEL_FILE = "EmoLabel/list_patition_label.txt"

LAYOUTS_HELP = (
    "expected one of these layouts:\n"
    "  rafdb:        ROOT/EmoLabel/list_patition_label.txt and ROOT/Image/aligned/train_00001_aligned.jpg ...\n"
    "  rafdb-kaggle: ROOT/DATASET/{train,test}/{1..7}/*.jpg with ROOT/train_labels.csv, ROOT/test_labels.csv\n"
    "  folder:       ROOT/{train,test}/<class name>/*.jpg\n"
    "  fer2013:      ROOT/fer2013.csv (columns emotion,pixels,Usage), or ROOT is that CSV"
)

# Folder-name spellings (lower case) that name a RAF-DB class.
_RAF_ALIASES: dict[str, str] = {
    **{c.lower(): c for c in RAFDB_CLASSES},
    "surprised": "Surprise", "fearful": "Fear", "scared": "Fear", "disgusted": "Disgust",
    "happy": "Happiness", "joy": "Happiness", "sad": "Sadness", "angry": "Anger",
}  # fmt: skip
_FER_USAGE = {"train": ("Training",), "test": ("PublicTest",), "test-private": ("PrivateTest",)}
_TEST_FALLBACKS = ("val", "valid", "validation")


@dataclass(frozen=True)
class Sample:
    """One labelled item: ``name`` as the label source spells it, image ``path`` (or decoded ``pixels``)."""

    name: str
    path: Path | None
    label: int
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass
class SplitData:
    """One split of a dataset: samples with 0-based labels and the problems met while listing them."""

    root: Path
    format: str
    split: str
    class_names: list[str]
    samples: list[Sample]
    problems: list[str] = field(default_factory=list)

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
        samples = [dataclasses.replace(s, label=y) for s, y in zip(self.samples, labels, strict=True)]
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


# ------------------------------------------------------------------------------------ detection
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
        if _is_fer_csv(root):
            return "fer2013"
        raise ValueError(f"{root}: not a dataset folder or a FER2013 CSV; {LAYOUTS_HELP}")
    if (root / RAFDB_LABEL_FILE).is_file():
        return "rafdb"
    data = root / "DATASET" if (root / "DATASET").is_dir() else root
    digit_dirs = _subdirs(data / "train")
    if digit_dirs and all(d.name in {str(i) for i in range(1, 8)} for d in digit_dirs):
        return "rafdb-kaggle"
    if _find_fer_csv(root) is not None:
        return "fer2013"
    if _subdirs(root / "train"):
        return "folder"
    raise ValueError(f"{root}: unknown dataset layout; {LAYOUTS_HELP}")


def _subdirs(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_fer_csv(p: Path) -> bool:
    if p.suffix.lower() != ".csv":
        return False
    try:
        with open(p, encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline(4096)
    except OSError:
        return False
    cols = {c.strip().lower() for c in header.split(",")}
    return {"emotion", "pixels"} <= cols


def _find_fer_csv(root: Path) -> Path | None:
    for cand in (root / "fer2013.csv", root / "fer2013" / "fer2013.csv"):
        if cand.is_file() and _is_fer_csv(cand):
            return cand
    csvs = [p for p in sorted(root.glob("*.csv")) if _is_fer_csv(p)]
    return csvs[0] if len(csvs) == 1 else None


# ------------------------------------------------------------------------------------ loading
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


def _check_split(split: str, allowed: Sequence[str], fmt: str) -> None:
    if split not in allowed:
        raise ValueError(f"unknown split {split!r} for {fmt} datasets; use one of: {', '.join(allowed)}")


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


def folder_class_names(root: str | os.PathLike[str]) -> list[str]:
    """Class names of a ``folder`` dataset, shared by all its splits (see module docstring).

    Example:
        >>> folder_class_names("data/ferplus")  # doctest: +SKIP
        ['anger', 'contempt', 'disgust', 'fear', 'happiness', 'neutral', 'sadness', 'surprise']
    """
    root = Path(root)
    names = sorted({d.name for s in ("train", "test", *_TEST_FALLBACKS) for d in _subdirs(root / s)})
    mapped = [_RAF_ALIASES.get(n.lower()) for n in names]
    if names and all(mapped) and len(set(mapped)) == len(mapped):
        return [c for c in RAFDB_CLASSES if c in set(mapped)]
    return names


def _load_folder(root: Path, split: str, probs: _Problems) -> tuple[Sequence[str], list[Sample]]:
    split_dir = root / split
    if not split_dir.is_dir() and split == "test":
        split_dir = next((root / s for s in _TEST_FALLBACKS if (root / s).is_dir()), split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{root / split}: split folder not found; {LAYOUTS_HELP}")
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


def _load_fer2013(root: Path, split: str, probs: _Problems) -> tuple[Sequence[str], list[Sample]]:
    _check_split(split, tuple(_FER_USAGE), "fer2013")
    path = root if root.is_file() else _find_fer_csv(root)
    if path is None:
        present = [c for c in (root / "fer2013.csv", root / "fer2013" / "fer2013.csv") if c.is_file()]
        if present:  # the file is there but its header is damaged: say so rather than "not found"
            raise ValueError(f"{present[0]}: not a FER2013 CSV (the first line must name the columns "
                             "emotion,pixels[,Usage])")
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
    text = row.get(fields["pixels"]) or ""
    try:
        values = np.asarray(text.split(), dtype=np.int64)
    except (ValueError, OverflowError):
        probs.add(f"{path}:{line}: pixels are not integers")
        return None
    if values.size != 48 * 48 or values.min() < 0 or values.max() > 255:
        probs.add(f"{path}:{line}: expected 2304 pixel values in 0..255, got {values.size}")
        return None
    gray = values.astype(np.uint8).reshape(48, 48)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    return Sample(name=f"fer2013_line{line:05d}", path=None, label=int(emotion), pixels=rgb)
