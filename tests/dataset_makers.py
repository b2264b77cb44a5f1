"""Tiny generated datasets in FERPlus' and AffectNet's official formats (headers as the owners distribute them)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FER_HEADER = ["emotion", "pixels", "Usage"]
FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                  "contempt", "unknown", "NF"]
AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
                    "expression", "valence", "arousal"]


def pixel_string(value: int) -> str:
    """A 48×48 FER2013 pixel string whose pixels are all ``value`` except a gradient row (so images differ)."""
    img = np.full((48, 48), value, np.uint8)
    img[0] = np.arange(48, dtype=np.uint8)
    return " ".join(str(int(v)) for v in img.ravel())


def write_csv(path: Path, header: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return path


def make_ferplus(root: Path, rows: Sequence[tuple[str, str, Sequence[int]]], pixels: Sequence[str] | None = None) -> Path:
    """``root/fer2013.csv`` + ``root/fer2013new.csv``; rows are ``(Usage, image name, 10 votes)``; row ``i``'s
    image has every pixel = ``10 + i`` (or ``pixels[i]`` as given)."""
    fer = [[0, pixels[i] if pixels else pixel_string(10 + i), usage] for i, (usage, _, _) in enumerate(rows)]
    write_csv(root / "fer2013.csv", FER_HEADER, fer)
    write_csv(root / "fer2013new.csv", FERPLUS_HEADER, [[u, n, *v] for u, n, v in rows])
    return root


def make_ferplus_folders(root: Path, splits: dict[str, Sequence[tuple[str, Sequence[int]]]], box_column: bool = False) -> Path:
    """``root/FER2013{Train,Valid,Test}/`` with 48×48 grayscale PNGs and a header-less ``label.csv``."""
    from PIL import Image

    folders = {"train": "FER2013Train", "validation": "FER2013Valid", "test": "FER2013Test"}
    for split, rows in splits.items():
        d = root / folders[split]
        d.mkdir(parents=True, exist_ok=True)
        out = []
        for i, (name, votes) in enumerate(rows):
            Image.fromarray(np.full((48, 48), 20 + i, np.uint8), mode="L").save(d / name)
            out.append([name, "(0, 0, 48, 48)", *votes] if box_column else [name, *votes])
        write_csv(d / "label.csv", None, out)
    return root


def make_affectnet(root: Path, train: Sequence[Sequence[object]], val: Sequence[Sequence[object]],
                   images: dict[str, tuple[int, int]] | None = None) -> Path:
    """``root/Manually_Annotated_file_lists/{training,validation}.csv`` + images under
    ``root/Manually_Annotated_Images/``. Rows are ``(path, x, y, w, h, expression)``; ``images`` maps a path to
    its ``(width, height)`` (each image: a bright square where the box is, dark elsewhere)."""
    from PIL import Image

    boxes = {str(r[0]): r for r in [*train, *val]}
    for rel, (w, h) in (images or {}).items():
        img = np.full((h, w, 3), 30, np.uint8)
        r = boxes.get(rel)
        if r is not None and all(isinstance(v, int) for v in r[1:5]):
            x, y, bw, bh = (int(v) for v in r[1:5])
            img[max(0, y) : y + bh, max(0, x) : x + bw] = (200, 120, 40)
        p = root / "Manually_Annotated_Images" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)

    def rows(rs):
        return [[r[0], *r[1:5], "1;2;3;4", r[5], 0.1, -0.2] for r in rs]

    lists = root / "Manually_Annotated_file_lists"
    write_csv(lists / "training.csv", AFFECTNET_HEADER, rows(train))
    write_csv(lists / "validation.csv", AFFECTNET_HEADER, rows(val))
    return root
