"""Shared constants: RAF-DB class order and ImageNet normalisation.

RAF-DB label files number the classes 1..7 in this order; everything inside eacfer uses 0-based
indices into :data:`RAFDB_CLASSES`.
"""

from __future__ import annotations

RAFDB_CLASSES: tuple[str, ...] = (
    "Surprise",
    "Fear",
    "Disgust",
    "Happiness",
    "Sadness",
    "Anger",
    "Neutral",
)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: The paper's recipe (EAC, ECCV 2022, official repository). Trainer defaults come from here.
PAPER_RECIPE: dict[str, float | int | str] = {
    "image_size": 224,
    "batch_size": 32,
    "lr": 1e-4,
    "weight_decay": 1e-4,
    "gamma": 0.9,
    "epochs": 60,
    "lam": 5.0,
    "seed": 0,
    "noise_p": 0.5,
    "noise_var": 30.0,
    "erasing_scale_min": 0.02,
    "erasing_scale_max": 0.25,
}

#: ``eacfer train --workers`` default. Chosen by measurement (docs/TRAINING.md, benchmarks/train_workers.py): one
#: epoch with 2 workers beat 0 workers in both alternating rounds even on a 2-core machine, because the workers'
#: augmentation overlaps the training step; the worker count does not change the results (tests/training/test_trainer.py).
TRAIN_WORKERS: int = 2

#: ``eacfer train --method``: EAC (the paper) or the cross-entropy baseline it is compared with.
TRAINING_METHODS: tuple[str, ...] = ("eac", "ce")
