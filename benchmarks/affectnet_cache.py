"""What the AffectNet crop cache buys: reading one epoch of images from the cache vs decoding + cropping the full
images every epoch, on a synthetic AffectNet-shaped set (official file lists, full-size JPEG photos, face boxes).

Prints one JSON line: the first (caching) load, a second load (cache hit), and one decode pass over the samples
from the crops and from the full images (what every epoch would cost without the cache).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/affectnet_cache.py --images 300 --size 640x480
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from eacfer.data.facecrops import crop_face  # noqa: E402
from eacfer.data.formats import load_split  # noqa: E402
from eacfer.data.imageio import load_image  # noqa: E402

HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
          "expression", "valence", "arousal"]


def make_set(root: Path, n: int, w: int, h: int, seed: int = 0) -> list[tuple[str, tuple[int, int, int, int]]]:
    import csv

    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rel = f"{i % 50}/{i:06d}.jpg"
        side = int(rng.integers(min(w, h) // 3, min(w, h) // 2))
        x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)  # photo-like: smooth, compressible
        img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        p = root / "Manually_Annotated_Images" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        img.save(p, quality=90)
        rows.append((rel, (x, y, side, side)))
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    for name in ("training.csv", "validation.csv"):
        with open(lists / name, "w", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow(HEADER)
            for i, (rel, (x, y, bw, bh)) in enumerate(rows):
                wr.writerow([rel, x, y, bw, bh, "", i % 8, 0.0, 0.0])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", default="640x480", help="WxH of the synthetic full images")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "AffectNet", Path(tmp) / "cache"
        rows = make_set(root, args.images, w, h)
        t0 = time.perf_counter()
        split = load_split(root, "train", cache_dir=cache)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_split(root, "train", cache_dir=cache)
        second = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in split.samples:
            load_image(s.path)
        from_cache = time.perf_counter() - t0
        t0 = time.perf_counter()
        for rel, box in rows:
            crop_face(load_image(root / "Manually_Annotated_Images" / rel), box, 224)
        from_full = time.perf_counter() - t0
    n = len(split.samples)
    print(json.dumps({
        "images": n, "full_size": f"{w}x{h}", "crop_size": 224, "load_avg_1min": round(os.getloadavg()[0], 2),
        "first_load_with_caching_s": round(first, 3), "second_load_cache_hit_s": round(second, 3),
        "epoch_decode_from_cache_img_s": round(n / from_cache, 1),
        "epoch_decode_and_crop_full_img_s": round(n / from_full, 1),
        "speedup_per_epoch": round(from_full / from_cache, 2),
    }))


if __name__ == "__main__":
    main()
