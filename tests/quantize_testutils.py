"""A quickly trained tiny classifier for the int8 tests (random weights make int8-vs-fp32 agreement meaningless).

ResNet-18 at 32 px, trained from scratch for a few epochs on synthetic faces plus crops of the public-domain
portrait (labelled Happiness), so its outputs depend on the input and are confident where it was trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 32


def train_tiny_model(path: Path, epochs: int = 4, seed: int = 0) -> Path:
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import ModelInfo, save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.data.synth import render_face
    from eacfer.infer.calibration import CALIBRATION_VARIANTS, portrait_crops

    rng = np.random.default_rng(seed)
    labels = np.arange(140) % 7
    faces = np.stack([render_face(int(label), rng, SIZE) for label in labels])
    portrait = portrait_crops(SIZE, variants=CALIBRATION_VARIANTS)
    images = np.concatenate([faces, portrait])
    targets = np.concatenate([labels, np.full(len(portrait), RAFDB_CLASSES.index("Happiness"))])
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    y = torch.from_numpy(targets).long()
    torch.manual_seed(seed)
    net = create_model("resnet18")
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 16):
            idx = perm[i:i + 16]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    save_model(path, net.eval(), ModelInfo("resnet18", list(RAFDB_CLASSES), SIZE, list(IMAGENET_MEAN),
                                           list(IMAGENET_STD)))
    return path


def small_crop_sets(seed: int = 1):
    """Calibration and check crops like the defaults, fewer of them (tests)."""
    from eacfer.infer.calibration import CALIBRATION_VARIANTS, CropSets, portrait_crops, synthetic_crops

    train, test = synthetic_crops(SIZE, n_train=32, n_test=56, seed=seed)
    return CropSets(calibration=np.concatenate([train, portrait_crops(SIZE, variants=CALIBRATION_VARIANTS)]),
                    checks={"synthetic_test": test, "portrait": portrait_crops(SIZE)},
                    description={"calibration": "test calibration crops", "synthetic_test": "56 synthetic faces",
                                 "portrait": "portrait variants"})
