"""Face crops from annotated boxes, cached on disk once (AffectNet's ~290k full images → small face crops).

Crop geometry is the inference convention of :mod:`eacfer.infer.align` without rotation (a box alone has no
eye keypoints): a square of side ``max(w, h) · (1 + 2 · margin)`` centred on the box centre, ``margin = 0.1``
(10 % of the box added on each side), padded black where the square leaves the image (as inference and
RAF-DB's aligned faces are), resized to
``size``×``size`` (area averaging when shrinking, bilinear when enlarging). A box that does not overlap
the image at all is an error for that image.

The cache is one JPEG (quality 95) per crop under a folder keyed by the dataset's real path, the crop size
and the margin (default ``affectnet`` under :func:`eacfer.utils.cache.cache_root`: ``$EACFER_CACHE_DIR``,
``$XDG_CACHE_HOME/eacfer`` or ``~/.cache/eacfer``). Each crop is
written to a temporary name and renamed, so a killed pass leaves only whole crops; the next pass computes
only the missing ones.

Example:
    >>> crop_face(np.zeros((100, 80, 3), np.uint8), (10, 20, 40, 50), size=64).shape
    (64, 64, 3)
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eacfer.data.imageio import ImageLoadError, load_image

log = logging.getLogger(__name__)

DEFAULT_MARGIN = 0.1  # the same as eacfer.infer.align.DEFAULT_MARGIN (a test keeps them equal)
DEFAULT_CROP_SIZE = 224
_JPEG_QUALITY = 95


def crop_face(image: np.ndarray, box: Sequence[float], size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A ``size``×``size``×3 uint8 crop of the square around ``box`` = ``(x, y, w, h)`` (see module docstring).

    Raises ``ValueError`` for an empty box or one entirely outside the image.

    Example:
        >>> img = np.zeros((10, 10, 3), np.uint8); img[4:6, 4:6] = 255
        >>> int(crop_face(img, (4, 4, 2, 2), size=12, margin=0.0).min())
        255
    """
    import cv2

    x, y, w, h = (float(v) for v in box)
    ih, iw = image.shape[:2]
    if not (w > 0 and h > 0):
        raise ValueError(f"empty face box {tuple(box)}")
    if x >= iw or y >= ih or x + w <= 0 or y + h <= 0:
        raise ValueError(f"face box {tuple(box)} lies outside the {iw}x{ih} image")
    side = max(w, h) * (1.0 + 2.0 * margin)
    x0 = int(round(x + w / 2.0 - side / 2.0))
    y0 = int(round(y + h / 2.0 - side / 2.0))
    s = max(1, int(round(side)))
    pad = (max(0, -y0), max(0, y0 + s - ih), max(0, -x0), max(0, x0 + s - iw))  # top, bottom, left, right
    region = image[max(0, y0) : min(ih, y0 + s), max(0, x0) : min(iw, x0 + s)]
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, borderType=cv2.BORDER_CONSTANT, value=(0, 0, 0))
    if s == size:
        return np.ascontiguousarray(region)
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interp)


@dataclass(frozen=True)
class CropJob:
    """One crop to cache: the source image, its face box ``(x, y, w, h)`` and where the crop goes."""

    source: Path
    box: tuple[float, float, float, float]
    target: Path


def default_cache_dir(root: str | os.PathLike[str], size: int, margin: float, base: str | None = None) -> Path:
    """The crop cache folder of a dataset at ``root`` (distinct per real path, crop size and margin).

    Example:
        >>> default_cache_dir("/data/AffectNet", 224, 0.1, base="/tmp/c").name.endswith("-224-m0.1-black")
        True
    """
    from eacfer.utils.cache import cache_root

    base_dir = (Path(base) if base else cache_root()) / "affectnet"
    key = hashlib.sha1(os.path.realpath(root).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return base_dir / f"{key}-{size}-m{margin:g}-black"  # -black: crops of 0.1 replicated their borders


def _write_crop(job: CropJob, size: int, margin: float) -> str | None:
    """Crop one image into its cache file; ``None`` on success, else the reason (the pass goes on)."""
    from PIL import Image

    try:
        crop = crop_face(load_image(job.source), job.box, size, margin)
    except (ImageLoadError, ValueError) as e:
        return str(e)
    job.target.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.target.with_name(f".{job.target.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(crop).save(tmp, format="JPEG", quality=_JPEG_QUALITY)
        # rename without fsync: a crash can lose the newest crops but never leaves a partial one visible
        # under the final name, which is all a resumed pass relies on (fsync per file would cost minutes)
        os.replace(tmp, job.target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        return f"cannot write crop {job.target}: {e.strerror or e}"
    return None


def cache_crops(
    jobs: Sequence[CropJob],
    size: int = DEFAULT_CROP_SIZE,
    margin: float = DEFAULT_MARGIN,
    progress: bool = True,
    workers: int | None = None,
    write: Callable[[CropJob, int, float], str | None] | None = None,
) -> dict[int, str]:
    """Make every missing crop of ``jobs``; returns ``{job index: reason}`` for the ones that failed.

    Existing crops are kept (that is the resume); a progress bar counts the missing ones.

    Example:
        >>> failed = cache_crops([CropJob(Path("a.jpg"), (0, 0, 9, 9), Path("/tmp/crops/a.jpg"))])  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    write = write or _write_crop
    todo = [i for i, j in enumerate(jobs) if not j.target.is_file()]
    if not todo:
        return {}
    log.info("caching %d face crops (%d already cached)", len(todo), len(jobs) - len(todo))
    failed: dict[int, str] = {}
    n_workers = workers or max(1, min(8, os.cpu_count() or 1))
    bar = tqdm(total=len(todo), desc="caching face crops", unit="img", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=n_workers)  # Pillow and OpenCV release the GIL while decoding
    try:
        chunk = 256  # bounded submission: an interrupt stops within a chunk, memory stays flat
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            for i, fut in zip(part, [pool.submit(write, jobs[i], size, margin) for i in part], strict=True):
                reason = fut.result()
                if reason is not None:
                    failed[i] = reason
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return failed
