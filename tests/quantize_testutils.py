"""A quickly trained tiny classifier for the int8 tests (random weights make int8-vs-fp32 agreement meaningless).

ResNet-18 at 32 px, trained from scratch for a few epochs on synthetic RAF-DB-layout faces (the generator the
int8 check's ``synthetic_test`` crops come from, other images) plus crops of the public-domain portrait
(labelled Happiness), so its outputs depend on the input. See :func:`small_crop_sets` for the check crops the
tests that need a passing int8 model use.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

SIZE = 32


def train_tiny_model(path: Path, epochs: int = 6, seed: int = 0, n_train: int = 280) -> Path:
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.data.imageio import load_image
    from eacfer.data.synth import generate_rafdb
    from eacfer.infer.runtime.calibration import CALIBRATION_VARIANTS, portrait_crops
    from eacfer.modelinfo import ModelInfo

    with tempfile.TemporaryDirectory(prefix="eacfer-tiny-") as tmp:
        # seed + 100: other faces than the check crops (small_crop_sets draws its set with seed 1)
        root = generate_rafdb(tmp, n_train=n_train, n_test=0, seed=seed + 100, size=SIZE)
        label_of = dict(line.split() for line in
                        (root / "EmoLabel" / "list_patition_label.txt").read_text(encoding="utf-8").splitlines())
        files = sorted((root / "Image" / "aligned").glob("train_*_aligned.jpg"))
        faces = np.stack([load_image(f) for f in files])
        labels = np.array([int(label_of[f.name.replace("_aligned", "")]) - 1 for f in files])  # 1..7 → 0..6
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


def small_crop_sets(seed: int = 1, model: Path | None = None, min_margin: float = 0.15):
    """Calibration and check crops like the defaults, fewer of them (tests).

    With ``model``, the synthetic check set keeps only the crops whose fp32 top-1 probability leads the
    second by at least ``min_margin``. Why: a ResNet-18 at 32 px trained for seconds agrees with its int8
    version on only 97–99 % of *all* synthetic crops (measured on 300), so with 56 crops the 99 % rule (which
    then allows no flip) would pass or fail by luck. int8 moves its probabilities by at most ~0.06 here, so a
    lead of 0.15 cannot flip. The tests that need "a model that passes" use these crops; the refusal is
    tested with an impossible threshold.
    """
    from eacfer.infer.runtime.calibration import (
        CALIBRATION_VARIANTS,
        CropSets,
        portrait_crops,
        synthetic_crops,
    )

    train, test = synthetic_crops(SIZE, n_train=32, n_test=96 if model is not None else 56, seed=seed)
    what = f"{len(test)} synthetic faces"
    if model is not None:
        from eacfer.infer.runtime.backends import load_classifier

        probs, _ = load_classifier(model, device="cpu", use_cache=False).classify(test)
        top2 = np.sort(probs, axis=1)[:, -2:]
        test = test[top2[:, 1] - top2[:, 0] >= min_margin]
        assert len(test) >= 24, f"only {len(test)} clearly classified synthetic crops"  # the fixture is checked
        what = f"{len(test)} synthetic faces the fp32 model classifies clearly"
    return CropSets(calibration=np.concatenate([train, portrait_crops(SIZE, variants=CALIBRATION_VARIANTS)]),
                    checks={"synthetic_test": test, "portrait": portrait_crops(SIZE)},
                    description={"calibration": "test calibration crops", "synthetic_test": what,
                                 "portrait": "portrait variants"})
