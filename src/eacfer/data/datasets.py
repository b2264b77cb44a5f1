"""Datasets: the on-disk formats (:mod:`eacfer.data.formats`) plus :class:`FERDataset`, a decoded-image cache.

Decoding is separate from augmentation: :class:`FERDataset` keeps every image as a uint8 H×W×3 array
(decoded once, in threads) and applies ``transform`` per item, so a GPU pipeline can take the whole
cache at once with :meth:`FERDataset.uint8_stack`.

Example:
    >>> split = load_split("data/RAF-DB", "train")            # doctest: +SKIP
    >>> ds = FERDataset(split, transform=EvalTransform(112))   # doctest: +SKIP
    >>> x, label, index = ds[0]                                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch.utils.data

from eacfer.data.formats import (
    FER2013_CLASSES,
    FORMATS,
    LAYOUTS_HELP,
    Sample,
    SplitData,
    detect_format,
    load_split,
)
from eacfer.data.imageio import DEFAULT_MAX_PIXELS, ImageLoadError, image_size, load_image

__all__ = [
    "FER2013_CLASSES",
    "FORMATS",
    "LAYOUTS_HELP",
    "FERDataset",
    "Sample",
    "SplitData",
    "detect_format",
    "load_split",
]

log = logging.getLogger(__name__)

_MAX_WARNINGS = 20  # individual warnings before switching to a summary (scraped folders can be huge)


class FERDataset(torch.utils.data.Dataset):
    """Images of one :class:`SplitData`, decoded once (``cache=True``) or lazily, as uint8 RGB arrays.

    Broken images are skipped with a warning and listed in ``skipped`` as ``(file, reason)``;
    ``strict=True`` raises :class:`ImageLoadError` naming the first broken file instead. With
    ``cache=False`` only headers are checked up front (format, size, bombs) and pixels are decoded in
    :meth:`image`. Items are ``(transform(image) or image, label, index)``; for a split read with
    ``label_mode="probability"`` (FERPlus vote distributions) the label is the float32 probability vector
    (:meth:`target`), which :func:`eacfer.models.loss.eac_loss` takes as a soft cross-entropy target.

    Example:
        >>> ds = FERDataset(load_split("data/RAF-DB", "test"), progress=True)  # doctest: +SKIP
        >>> len(ds), ds.class_names[0], ds.image(0).shape                      # doctest: +SKIP
        (3068, 'Surprise', (100, 100, 3))
    """

    def __init__(
        self,
        split: SplitData,
        transform: Callable[[np.ndarray], Any] | None = None,
        cache: bool = True,
        strict: bool = False,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.split = split
        self.transform = transform
        self.class_names: list[str] = list(split.class_names)
        self.soft_targets = getattr(split, "label_mode", "majority") == "probability"
        self.cache = cache
        self.max_pixels = max_pixels
        self.samples: list[Sample] = []
        self.skipped: list[tuple[str, str]] = []
        self._images: list[np.ndarray] | None = [] if cache else None
        self._sizes: set[tuple[int, int]] = set()  # (height, width) of the kept images
        check = self._decode if cache else self._check_header
        with contextlib.closing(self._run(check, split.samples, progress)) as results:
            for sample, result in results:
                if isinstance(result, ImageLoadError):
                    if strict:
                        raise result
                    self._skip(sample, result)
                    continue
                self.samples.append(sample)
                if self._images is not None:
                    self._images.append(result)
                    self._sizes.add(result.shape[:2])
                else:
                    self._sizes.add(result)
        if len(self.skipped) > _MAX_WARNINGS:
            log.warning("%d broken images skipped in total (%s split)", len(self.skipped), split.split)

    # ---------------------------------------------------------------------------- public API
    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int, int]:
        img = self.image(i)
        x = self.transform(img) if self.transform is not None else img
        return x, (self.target(i) if self.soft_targets else self.samples[i].label), i

    def target(self, i: int) -> np.ndarray:
        """Probability target (float32, one per class) of kept sample ``i``: its soft label, else one-hot.

        Example:
            >>> ds.target(0).sum()  # doctest: +SKIP
            1.0
        """
        s = self.samples[i]
        if s.soft is not None:
            return np.asarray(s.soft, dtype=np.float32)
        out = np.zeros(len(self.class_names), dtype=np.float32)
        out[s.label] = 1.0
        return out

    def labels(self) -> np.ndarray:
        """0-based labels of the kept samples (int64)."""
        return np.asarray([s.label for s in self.samples], dtype=np.int64)

    def image(self, i: int) -> np.ndarray:
        """Decoded H×W×3 uint8 RGB image of kept sample ``i`` (from the cache when there is one)."""
        if self._images is not None:
            return self._images[i]
        s = self.samples[i]
        if s.pixels is not None:
            return s.pixels
        return load_image(s.path, max_pixels=self.max_pixels)

    @property
    def common_size(self) -> tuple[int, int] | None:
        """``(height, width)`` shared by every kept image (RAF-DB: ``(100, 100)``), or ``None`` if sizes vary.

        Example:
            >>> FERDataset(load_split("data/RAF-DB", "train")).common_size  # doctest: +SKIP
            (100, 100)
        """
        return next(iter(self._sizes)) if len(self._sizes) == 1 else None

    @property
    def face_size(self) -> int | None:
        """The side of :attr:`common_size` when it is square (what a model file records), else ``None``.

        Example:
            >>> FERDataset(load_split("data/RAF-DB", "train")).face_size  # doctest: +SKIP
            100
        """
        size = self.common_size
        return int(size[0]) if size is not None and size[0] == size[1] and size[0] >= 8 else None

    def uint8_stack(
        self, size: int | None = None, out: Callable[[tuple[int, ...]], np.ndarray] | None = None
    ) -> np.ndarray:
        """All kept images as one N×H×W×3 uint8 array, resized to ``size``×``size`` when given.

        Without ``size`` every image must already have the same shape. ``out(shape)`` allocates the result
        (e.g. a memory-mapped file, so a set larger than RAM is written image by image); default ``np.empty``.

        Example:
            >>> FERDataset(split).uint8_stack(112).shape  # doctest: +SKIP
            (12271, 112, 112, 3)
        """
        n = len(self.samples)
        if n == 0:
            s = size or 0
            return np.zeros((0, s, s, 3), np.uint8)
        first = self.image(0) if size is None else _resize(self.image(0), size)
        stack = (out or (lambda shape: np.empty(shape, dtype=np.uint8)))((n, *first.shape))
        for i in range(n):
            img = self.image(i)
            if size is not None:
                img = _resize(img, size)
            elif img.shape != first.shape:
                raise ValueError(
                    f"{self.samples[i].path or self.samples[i].name}: image is {img.shape[1]}x{img.shape[0]}, "
                    f"others {first.shape[1]}x{first.shape[0]}; pass size= to resize"
                )
            stack[i] = img
        return stack

    # ---------------------------------------------------------------------------- internals
    def _decode(self, s: Sample) -> np.ndarray | ImageLoadError:
        if s.pixels is not None:
            return s.pixels
        try:
            return load_image(s.path, max_pixels=self.max_pixels)
        except ImageLoadError as e:
            return e

    def _check_header(self, s: Sample) -> tuple[int, int] | ImageLoadError:
        if s.pixels is not None:
            return s.pixels.shape[:2]
        try:
            w, h = image_size(s.path, max_pixels=self.max_pixels)
        except ImageLoadError as e:
            return e
        return h, w

    def _skip(self, s: Sample, err: ImageLoadError) -> None:
        self.skipped.append((str(s.path or s.name), err.reason))
        if len(self.skipped) <= _MAX_WARNINGS:
            log.warning("skipping broken image %s", err)

    @staticmethod
    def _run(
        fn: Callable[[Sample], Any], samples: list[Sample], progress: bool
    ) -> Generator[tuple[Sample, Any], None, None]:
        """``(sample, fn(sample))`` in sample order; Pillow releases the GIL while decoding, so threads help."""
        from eacfer.utils.progress import progress_bar as tqdm

        workers = max(1, min(8, os.cpu_count() or 1))
        bar = tqdm(total=len(samples), desc="decoding images", unit="img", disable=not progress, leave=False)
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            # Submit in bounded chunks so a strict failure stops early and memory stays flat.
            chunk = 256
            for start in range(0, len(samples), chunk):
                part = samples[start : start + chunk]
                futures: list[Future] = [pool.submit(fn, s) for s in part]
                for s, fut in zip(part, futures, strict=True):
                    yield s, fut.result()
                    bar.update(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    # INTER_AREA avoids aliasing when shrinking; linear is the better choice when enlarging.
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)
