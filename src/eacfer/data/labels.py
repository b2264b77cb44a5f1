"""RAF-DB label files (``NAME LABEL`` per line, 1-based labels) and symmetric label noise.

The official ``list_patition_label.txt`` and the EAC paper's ``noise01/02/03.txt`` share one format::

    train_00001.jpg 5
    test_0001.jpg 1

Real files have quirks: the shipped files have no final newline, copies edited on Windows have CRLF,
some editors add a UTF-8 BOM. All of that is accepted. Lines that are *wrong* (column count,
non-integer or out-of-range label, duplicate names, names that could escape the dataset folder) are
skipped with a ``"FILE:LINE: reason"`` problem line, or raise :class:`ValueError` with that message
when ``strict=True``. Inside eacfer labels are 0-based.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eacfer.utils.atomic import atomic_open

# ASCII digits only: int() would also accept "+5", "5_0" or Arabic-Indic digits.
_INT_RE = re.compile(r"[0-9]{1,9}")
# "C:name" is drive-relative on Windows, so it could point outside the dataset folder.
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class LabelEntry:
    """One label line: file ``name`` as written in the file, 0-based ``label``, 1-based source ``line``."""

    name: str
    label: int
    line: int = 0


@dataclass
class LabelFile:
    """Parsed label file: the kept ``entries`` and one ``problems`` line per skipped line."""

    entries: list[LabelEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        """File names in file order."""
        return [e.name for e in self.entries]

    def labels(self) -> np.ndarray:
        """0-based labels as an int64 array."""
        return np.asarray([e.label for e in self.entries], dtype=np.int64)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe plain file name (``None`` when it is).

    Label files name files inside one folder; anything that could address another folder
    (separators, ``..``, drive prefixes) or break the one-line format is refused.

    Example:
        >>> name_problem("train_00001.jpg") is None
        True
        >>> name_problem("../../etc/passwd")
        "name contains a path separator: '../../etc/passwd'"
    """
    if not name:
        return "empty name"
    if "/" in name or "\\" in name:
        return f"name contains a path separator: {name!r}"
    if name in (".", ".."):
        return f"name escapes the folder: {name!r}"
    if _DRIVE_RE.match(name):
        return f"name has a drive prefix: {name!r}"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return f"name contains whitespace or control characters: {name!r}"
    return None


def _read_text(path: Path) -> tuple[str, bool]:
    """File text (BOM removed) and whether it was valid UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig"), True
    except UnicodeDecodeError:
        # Keep going in lenient mode: undecodable lines are reported one by one below.
        return raw.decode("utf-8-sig", errors="replace"), False


def parse_label_file(path: str | os.PathLike[str], num_classes: int = 7, strict: bool = False) -> LabelFile:
    """Parse a RAF-DB-format label file (1-based labels) into 0-based :class:`LabelEntry` items.

    Blank lines, CRLF/CR line ends, a missing final newline, a UTF-8 BOM and extra spaces or tabs
    are accepted silently. Malformed lines are skipped with a ``"FILE:LINE: reason"`` problem, or
    raise :class:`ValueError` with that message when ``strict``.

    Example:
        >>> lf = parse_label_file("EmoLabel/list_patition_label.txt")  # doctest: +SKIP
        >>> lf.entries[0]                                               # doctest: +SKIP
        LabelEntry(name='train_00001.jpg', label=4, line=1)
    """
    path = Path(path)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a label file")
    text, _ = _read_text(path)
    result = LabelFile()
    first_line: dict[str, int] = {}
    # Normalise CRLF and lone CR first; str.splitlines() would also split on form feeds and
    # Unicode separators, which would shift line numbers away from what editors show.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for lineno, raw_line in enumerate(lines, start=1):
        line = raw_line.strip()
        if not line:
            continue
        reason = _line_problem(line, num_classes, first_line)
        if reason is not None:
            msg = f"{path}:{lineno}: {reason}"
            if strict:
                raise ValueError(msg)
            result.problems.append(msg)
            continue
        name, label = line.split()
        first_line[name] = lineno
        result.entries.append(LabelEntry(name=name, label=int(label) - 1, line=lineno))
    return result


def _line_problem(line: str, num_classes: int, first_line: dict[str, int]) -> str | None:
    if "\ufffd" in line:
        return "not valid UTF-8"
    parts = line.split()
    if len(parts) != 2:
        return f"expected 'NAME LABEL' (2 columns), got {len(parts)}: {line[:80]!r}"
    name, label = parts
    bad_name = name_problem(name)
    if bad_name is not None:
        return bad_name
    if not _INT_RE.fullmatch(label):
        return f"label is not an integer: {label[:20]!r}"
    value = int(label)
    if not 1 <= value <= num_classes:
        return f"label {value} out of range 1..{num_classes}"
    if name in first_line:
        return f"duplicate name {name!r} (first on line {first_line[name]})"
    return None


def write_label_file(
    path: str | os.PathLike[str], entries: Iterable[tuple[str, int]] | Iterable[LabelEntry]
) -> None:
    """Write ``(name, 0-based label)`` pairs (or :class:`LabelEntry` items) atomically, 1-based.

    Raises :class:`ValueError` for names the format cannot hold (whitespace, separators) or
    negative labels, before anything is written.

    Example:
        >>> write_label_file("run/train_labels_used.txt", [("train_00001.jpg", 4)])  # doctest: +SKIP
    """
    lines = []
    for item in entries:
        name, label = (item.name, item.label) if isinstance(item, LabelEntry) else item
        label = int(label)
        bad = name_problem(str(name))
        if bad is not None:
            raise ValueError(f"{path}: cannot write label for {name!r}: {bad}")
        if label < 0:
            raise ValueError(f"{path}: negative label {label} for {name!r}")
        lines.append(f"{name} {label + 1}\n")
    # newline="" keeps "\n" on every platform, like the official files.
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("".join(lines))


def inject_symmetric_noise(labels: np.ndarray, rate: float, num_classes: int, seed: int) -> np.ndarray:
    """Flip exactly ``round(rate * N)`` labels, each to a uniformly chosen *different* class.

    Deterministic in ``seed``; the input is not modified.

    Example:
        >>> noisy = inject_symmetric_noise(np.zeros(10, np.int64), 0.3, 7, seed=0)
        >>> int((noisy != 0).sum())
        3
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"noise rate must be in [0, 1], got {rate}")
    if num_classes < 2:
        raise ValueError(f"symmetric noise needs at least 2 classes, got {num_classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}")
    n = labels.shape[0]
    k = int(round(float(rate) * n))
    rng = np.random.default_rng(seed)
    out = labels.astype(np.int64, copy=True)
    idx = rng.choice(n, size=k, replace=False)
    # An offset in 1..K-1 modulo K is uniform over the K-1 other classes and never 0.
    offsets = rng.integers(1, num_classes, size=k)
    out[idx] = (out[idx] + offsets) % num_classes
    return out.astype(labels.dtype, copy=False)
