"""Datasets and loaders of a training run (the one place where the trainer builds its data).

Kept separate from :mod:`eacfer.training.trainer` so another pipeline can reuse :func:`build_datasets` (decoded,
cached uint8 images + labels) and replace only :func:`make_loaders`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, WeightedRandomSampler

from eacfer.utils.seed import seed_worker

if TYPE_CHECKING:
    from eacfer.data.datasets import FERDataset
    from eacfer.training.config import TrainConfig

log = logging.getLogger(__name__)

CLEAN_RAFDB_LABEL_FILE = "list_patition_label.txt"


@dataclass
class TrainData:
    """The train/test datasets of a run and what was decided while building them."""

    train: FERDataset
    test: FERDataset
    class_names: list[str]
    format: str
    noisy: bool
    flip_view: str
    labels_changed: int | None = None
    problems: list[str] = field(default_factory=list)
    #: rows each split left out on purpose (FERPlus unknown/NF or no majority, AffectNet codes 8-10, ...)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)

    def used_labels(self) -> list[tuple[str, int]]:
        """``(name, 0-based label)`` of every training image actually used (after skips and noise)."""
        labels = self.train.labels()
        return [(str(s.name), int(v)) for s, v in zip(self.train.samples, labels, strict=True)]


def write_used_labels(path: str | Path, entries: Sequence[tuple[str, int]]) -> None:
    """Write ``train_labels_used.txt`` in the official ``NAME LABEL`` (1-based) format.

    RAF-DB names are plain file names and go through :func:`eacfer.data.labels.write_label_file`.
    Other formats name samples by relative path (``happy/img1.jpg``), which the strict writer refuses
    (it guards against path escapes when *reading*); those are written as they are, with any
    whitespace percent-encoded so that each line keeps exactly two columns.
    """
    from urllib.parse import quote

    from eacfer.data.labels import write_label_file
    from eacfer.utils.atomic import write_text

    try:
        write_label_file(path, entries)
    except ValueError:
        write_text(path, "".join(f"{quote(n, safe='/._-()[]+,@')} {int(y) + 1}\n" for n, y in entries))


def labels_are_noisy(label_file: str | None, noise_rate: float) -> bool:
    """Whether the training labels are (knowingly) noisy: injected noise or a label file other than the clean one.

    Example:
        >>> labels_are_noisy("EmoLabel/noise03.txt", 0.0), labels_are_noisy(None, 0.0)
        (True, False)
    """
    return noise_rate > 0 or (label_file is not None and Path(label_file).name != CLEAN_RAFDB_LABEL_FILE)


def build_datasets(cfg: TrainConfig) -> TrainData:
    """Load both splits, inject label noise if asked, and wrap them with EAC's train / eval transforms.

    Example:
        >>> data = build_datasets(TrainConfig(data="data/RAF-DB", out="runs/x"))  # doctest: +SKIP
    """
    from eacfer.data.datasets import FERDataset, load_split
    from eacfer.data.labels import inject_symmetric_noise
    from eacfer.data.transforms import EACTrainTransform, EvalTransform
    from eacfer.models import get_backbone_spec

    opts = {"classes": cfg.classes, "cache_dir": cfg.crop_cache, "progress": cfg.progress}
    train_split = load_split(cfg.data, split="train", format=cfg.format, label_file=cfg.label_file, strict=cfg.strict,
                             label_mode=cfg.label_mode, **opts)
    test_split = load_split(cfg.data, split="test", format=train_split.format, strict=cfg.strict, **opts)
    val_fraction = float(getattr(cfg, "val_fraction", 0.0))  # configs built elsewhere may predate the option
    if val_fraction > 0:
        from eacfer.data.holdout import split_holdout

        # before any noise injection: `eacfer calibrate --split val` rebuilds this part from the clean split
        train_split, held = split_holdout(train_split, val_fraction, cfg.seed)
        log.info("held out %d of %d train images (%.3g per class, seed %d) for calibration (eacfer calibrate)",
                 len(held.samples), len(held.samples) + len(train_split.samples), val_fraction, cfg.seed)
    # A malformed line of a label file read for both splits (RAF-DB's one file) is one problem, not two.
    problems = list(dict.fromkeys([*train_split.problems, *test_split.problems]))
    for p in problems[:20]:
        log.warning("%s", p)
    if len(problems) > 20:
        log.warning("... and %d more label problems", len(problems) - 20)
    if list(train_split.class_names) != list(test_split.class_names):
        raise ValueError(f"{cfg.data}: train and test splits have different classes: "
                         f"{train_split.class_names} vs {test_split.class_names}")
    class_names = [str(c) for c in train_split.class_names]
    warn_untrained_classes(train_split.labels(), test_split.labels(), class_names)
    changed = None
    if cfg.noise_rate > 0:
        clean = np.asarray(train_split.labels())
        noisy_labels = inject_symmetric_noise(clean, cfg.noise_rate, len(class_names), cfg.noise_seed)
        changed = int((noisy_labels != clean).sum())
        train_split = train_split.with_labels(noisy_labels)
        log.info("injected symmetric label noise: %d of %d train labels changed (rate %.3f, seed %d)",
                 changed, clean.size, cfg.noise_rate, cfg.noise_seed)
    noisy = labels_are_noisy(cfg.label_file, cfg.noise_rate)
    flip_view = cfg.flip_view if cfg.flip_view != "auto" else ("independent" if noisy else "mirrored")
    spec = get_backbone_spec(cfg.backbone)
    train_tf = EACTrainTransform(cfg.image_size, mean=spec.mean, std=spec.std, noise_p=cfg.noise_p,
                                 noise_var=cfg.noise_var, erasing_scale=tuple(cfg.erasing_scale), flip_view=flip_view)
    cache = _fits_in_memory(train_split, test_split)
    train = FERDataset(train_split, transform=train_tf, cache=cache, strict=cfg.strict, progress=cfg.progress)
    test = FERDataset(test_split, transform=EvalTransform(cfg.image_size, spec.mean, spec.std), cache=cache,
                      strict=cfg.strict, progress=cfg.progress)
    # FERDataset already warned once per broken image (and summarised beyond 20): no second warning here
    if len(train) == 0:
        raise ValueError(f"{cfg.data}: no usable training images")
    if len(test) == 0:
        raise ValueError(f"{cfg.data}: no usable test images")
    return TrainData(train=train, test=test, class_names=class_names, format=str(train_split.format), noisy=noisy,
                     flip_view=flip_view, labels_changed=changed, problems=problems,
                     dropped={sp.split: dict(sp.stats.get("dropped", {})) for sp in (train_split, test_split)})


def warn_untrained_classes(train_labels: np.ndarray, test_labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Warn about (and return) classes that occur in the test split but never in training.

    Example:
        >>> warn_untrained_classes(np.array([0, 0]), np.array([0, 1]), ["a", "b"])
        ['b']
    """
    in_train = set(np.asarray(train_labels).tolist())
    missing = [str(class_names[c]) for c in sorted(set(np.asarray(test_labels).tolist())) if c not in in_train]
    for name in missing:
        log.warning("class %r has test images but no training examples: the model cannot learn it", name)
    return missing


_MEMORY_CACHE_BYTES = 8 << 30  # decoded-image cache limit; bigger sets (AffectNet) decode per item in the loader


def _fits_in_memory(*splits: object) -> bool:
    """Whether decoding every image up front fits :data:`_MEMORY_CACHE_BYTES` (estimated from the first image)."""
    from eacfer.data.imageio import ImageLoadError, image_size

    samples = [s for sp in splits for s in sp.samples]  # type: ignore[attr-defined]
    first = next((s for s in samples if s.path is not None), None)
    if first is None:
        return True  # pixels already in memory (FER2013 / FERPlus CSV)
    try:
        w, h = image_size(first.path)
    except ImageLoadError:
        return True
    need = len(samples) * w * h * 3
    if need > _MEMORY_CACHE_BYTES:
        log.info("%d images of %dx%d need %.1f GiB decoded: decoding per item instead of caching",
                 len(samples), w, h, need / 2**30)
        return False
    return True


def balanced_sampler(labels: np.ndarray, num_classes: int, generator: torch.Generator) -> WeightedRandomSampler:
    """Class-balanced sampling: every class is drawn equally often in expectation (weights 1 / class count),
    with replacement, one epoch = as many draws as images (the usual AffectNet practice).

    Example:
        >>> s = balanced_sampler(np.array([0, 0, 0, 1]), 2, torch.Generator().manual_seed(0))
        >>> [round(w, 3) for w in s.weights.tolist()]
        [0.333, 0.333, 0.333, 1.0]
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = 1.0 / counts[labels]
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples=len(labels),
                                 replacement=True, generator=generator)


class SeededSampler(Sampler[tuple[int, int]]):
    """``(index, seed)`` pairs: the indices of ``inner``, each with its own augmentation seed.

    Per epoch one number is drawn from ``generator`` (in the main process); sample ``k`` of the epoch gets
    ``base + k``. The seeds therefore depend on the generator's state only, not on which worker process
    loads the sample, and resuming (which restores the generator) repeats them.

    Example:
        >>> s = SeededSampler(range(3), torch.Generator().manual_seed(0))
        >>> [i for i, _ in s], len({seed for _, seed in s})
        ([0, 1, 2], 3)
    """

    def __init__(self, inner: Sampler[int] | Sequence[int], generator: torch.Generator) -> None:
        self.inner, self.generator = inner, generator

    def __iter__(self):  # noqa: ANN204 - Iterator[tuple[int, int]]
        base = int(torch.randint(0, 2**62, (), generator=self.generator))
        for k, i in enumerate(self.inner):
            yield int(i), base + k

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]


class SeededDataset(Dataset):
    """``dataset[i]`` drawn with torch's RNG seeded by the ``(i, seed)`` item of :class:`SeededSampler`.

    The RNG state is restored afterwards (``torch.random.fork_rng``), so with ``--workers 0`` the
    augmentation does not shift the draws of the training step. Other attributes are the dataset's.

    Example:
        >>> ds = SeededDataset([torch.rand(()) for _ in range(2)])
        >>> len(ds)
        2
    """

    def __init__(self, dataset: Sequence) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):  # noqa: ANN204 - the dataset's item
        i, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[i]

    def __getattr__(self, name: str):  # noqa: ANN204 - labels(), class_names, … of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def make_loaders(
    cfg: TrainConfig,
    data: TrainData,
    generator: torch.Generator,
    *,
    pin_memory: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Training loader (shuffled from ``generator``, seeded workers) and test loader (in order)."""
    del mean, std  # the transforms already carry them; kept for pipelines that normalise on the device
    n = len(data.train)
    # A last batch of one sample breaks BatchNorm in train mode when the final feature map is 1×1 (small
    # inputs); dropping that single sample is the only case where we drop anything.
    drop_last = n % cfg.batch_size == 1 and n > 1
    common = {"num_workers": cfg.workers, "pin_memory": pin_memory, "worker_init_fn": seed_worker,
              "persistent_workers": False}
    if getattr(cfg, "sampler", "shuffle") == "balanced":
        order: Sampler[int] = balanced_sampler(data.train.labels(), len(data.class_names), generator)
    else:
        order = RandomSampler(data.train, generator=generator)
    # each image's augmentation is seeded from the loader's generator and its place in the epoch, so the
    # batches are the same whatever --workers is (and the main process's RNG is not touched by them)
    train_loader = DataLoader(SeededDataset(data.train), batch_size=cfg.batch_size,
                              sampler=SeededSampler(order, generator), drop_last=drop_last, generator=generator,
                              **common)
    # The test loader gets its own generator so iterating it never draws from torch's global RNG.
    test_loader = DataLoader(data.test, batch_size=cfg.eval_batch_size or max(cfg.batch_size, 64), shuffle=False,
                             generator=torch.Generator().manual_seed(0), **common)
    return train_loader, test_loader
