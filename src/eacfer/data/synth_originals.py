"""Synthetic RAF-DB *originals*: each synthetic face placed in a larger scene, with the face box and five
landmarks written in RAF-DB's own annotation formats (for evaluating through the detector, #28).

RAF-DB ships, next to its aligned 100×100 crops, the original photos (``Image/original/train_00001.jpg``),
a face box per photo (``Annotation/boundingbox/train_00001_boundingbox.txt``: ``x1 y1 x2 y2``) and five
manual landmarks (``Annotation/manual/train_00001_manu_attri.txt``: five ``x<TAB>y`` lines — eye centres,
nose tip, mouth corners — then one line each for gender, race and age). Its aligned crops were cut from the
originals by a similarity transform of these landmarks. Here it goes the other way: the aligned synthetic face
is mapped into a scene by a random similarity transform (scale, in-plane rotation, position), so the aligned
image is exactly what that face looks like after alignment, and the annotations follow the same map.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from eacfer.utils.atomic import write_text


def place_in_scene(face: np.ndarray, landmarks: np.ndarray, box: tuple[float, float, float, float],
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """``(scene RGB, landmarks in the scene, face box x1 y1 x2 y2 in the scene)`` for an aligned face image.

    The face is enlarged 1.3–2.4×, rotated by up to ±8° and put anywhere it fits in a scene 3–4.5 face
    widths wide, over a background of gradient, clutter and noise.

    Example:
        >>> scene, lm, box = place_in_scene(face, lm, box, np.random.default_rng(0))  # doctest: +SKIP
    """
    import cv2

    s_in = face.shape[0]
    scale = rng.uniform(1.3, 2.4)
    angle = math.radians(rng.uniform(-8.0, 8.0))
    side = s_in * scale * (abs(math.cos(angle)) + abs(math.sin(angle)))  # the rotated square's extent
    w = int(max(side + 8, s_in * scale * rng.uniform(3.0, 4.5)))
    h = int(max(side + 8, s_in * scale * rng.uniform(2.2, 3.0)))
    scene = _background(rng, w, h)
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    # top-left of the rotated square's bounding box, then the translation that puts the face centre there
    x0, y0 = rng.uniform(2, w - side - 2), rng.uniform(2, h - side - 2)
    half = s_in / 2
    tx = x0 + side / 2 - (c * half - s * half)
    ty = y0 + side / 2 - (s * half + c * half)
    m = np.array([[c, -s, tx], [s, c, ty]])
    cv2.warpAffine(face, m, (w, h), dst=scene, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    pts = np.asarray(landmarks, np.float64) @ m[:, :2].T + m[:, 2]
    x1, y1, x2, y2 = (min(max(v, 0.0), s_in) for v in box)  # the head as far as the aligned image shows it
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]) @ m[:, :2].T + m[:, 2]
    out_box = (float(max(0.0, corners[:, 0].min())), float(max(0.0, corners[:, 1].min())),
               float(min(w - 1.0, corners[:, 0].max())), float(min(h - 1.0, corners[:, 1].max())))
    return scene, pts, out_box


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    import cv2

    a, b = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    t = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    img = (a * (1 - t) + b * t) * np.ones((h, 1, 1), np.float32)
    for _ in range(int(rng.integers(2, 7))):  # clutter: rectangles that are not faces
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(10, w // 3)), y + int(rng.integers(10, h // 3))),
                      tuple(float(v) for v in rng.uniform(0, 255, 3)), -1)
    img += rng.uniform(-6, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def boundingbox_text(box: tuple[float, float, float, float]) -> str:
    """RAF-DB's ``*_boundingbox.txt`` content: ``x1 y1 x2 y2`` on one line.

    Example:
        >>> boundingbox_text((1, 2.5, 30, 40))
        '1.00 2.50 30.00 40.00\\n'
    """
    return " ".join(f"{v:.2f}" for v in box) + "\n"


def manual_text(landmarks: np.ndarray, gender: int, race: int, age: int) -> str:
    """RAF-DB's ``*_manu_attri.txt`` content: five ``x<TAB>y`` landmark lines, then gender, race and age lines.

    Example:
        >>> lines = manual_text(np.arange(10).reshape(5, 2), 1, 0, 2).splitlines()
        >>> lines[0], lines[4], lines[5:]
        ('0.00\\t1.00', '8.00\\t9.00', ['1', '0', '2'])
    """
    lines = [f"{x:.2f}\t{y:.2f}" for x, y in np.asarray(landmarks, np.float64)]
    return "\n".join([*lines, str(int(gender)), str(int(race)), str(int(age))]) + "\n"


def write_original(root: Path, name: str, face: np.ndarray, landmarks: np.ndarray,
                   box: tuple[float, float, float, float], rng: np.random.Generator, write_jpeg) -> None:
    """Write ``Image/original/NAME``, its box file and its manual annotation file under ``root``."""
    stem = Path(name).stem
    scene, pts, scene_box = place_in_scene(face, landmarks, box, rng)
    for sub in ("Image/original", "Annotation/boundingbox", "Annotation/manual"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    write_jpeg(root / "Image" / "original" / name, scene, 92)
    write_text(root / "Annotation" / "boundingbox" / f"{stem}_boundingbox.txt", boundingbox_text(scene_box))
    write_text(root / "Annotation" / "manual" / f"{stem}_manu_attri.txt",
               manual_text(pts, int(rng.integers(0, 3)), int(rng.integers(0, 3)), int(rng.integers(0, 5))))
