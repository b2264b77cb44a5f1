"""Face crops for int8 calibration and for the int8-vs-fp32 agreement check.

Two sources, both available offline: the synthetic RAF-DB-shaped faces of
:func:`eacfer.data.synth.generate_rafdb` (aligned like RAF-DB, resized to the model input as evaluation
does) and the bundled public-domain portrait (``assets/astronaut.jpg``, NASA) detected with MediaPipe,
aligned like the predictor does, in variants: mirrored, rotated and rescaled.

Calibration and check use disjoint crops: the synthetic *train* split and one set of portrait variants
calibrate; the synthetic *test* split and another set of variants (other angles and scales) check.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: the bundled public-domain portrait (NASA astronaut Eileen Collins)
PORTRAIT = Path(__file__).resolve().parents[2] / "assets" / "astronaut.jpg"


@dataclass(frozen=True)
class PortraitVariants:
    """Which transformed copies of the portrait to crop (each also mirrored)."""

    angles: tuple[float, ...]
    scales: tuple[float, ...]

    def describe(self) -> str:
        return (f"{PORTRAIT.name} + mirror, rotated {', '.join(f'{a:g}' for a in self.angles)} deg, "
                f"rescaled x{', x'.join(f'{s:g}' for s in self.scales)}")


#: variants used to calibrate (int8 ranges) …
CALIBRATION_VARIANTS = PortraitVariants(angles=(-12.0, -4.0, 4.0, 12.0), scales=(0.55, 0.9, 1.2))
#: … and the disjoint ones the agreement check runs on (original included)
CHECK_VARIANTS = PortraitVariants(angles=(-25.0, -15.0, -8.0, 8.0, 15.0, 25.0), scales=(0.4, 0.7, 1.0, 1.4, 1.8))


def _variants(rgb: np.ndarray, spec: PortraitVariants) -> list[np.ndarray]:
    import cv2

    h, w = rgb.shape[:2]
    out: list[np.ndarray] = []
    for img in (rgb, np.ascontiguousarray(rgb[:, ::-1])):
        for a in spec.angles:
            m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), a, 1.0)
            out.append(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101))
        for s in spec.scales:
            size = (max(8, round(w * s)), max(8, round(h * s)))
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
            out.append(img if s == 1.0 else cv2.resize(img, size, interpolation=interp))
    return out


def portrait_crops(input_size: int, face_size: int | None = None, variants: PortraitVariants = CHECK_VARIANTS,
                   image: str | Path = PORTRAIT, margin: float | None = None, shift: float | None = None) -> np.ndarray:
    """N×S×S×3 uint8 aligned face crops of the portrait's variants (variants without a face are skipped).

    Crops are made as :class:`~eacfer.infer.predictor.Predictor` makes them, by the same
    :class:`~eacfer.infer.recipe.FaceRecipe`: MediaPipe full-range detection, eyes levelled, cropped at
    ``face_size`` (the model's training face size) with the model's ``margin`` (``None``: 0.1) and ``shift``
    and resized to ``input_size``.

    Example:
        >>> portrait_crops(64).shape[1:]  # doctest: +SKIP
        (64, 64, 3)
    """
    from eacfer.data.imageio import load_image
    from eacfer.infer.align import DEFAULT_MARGIN
    from eacfer.infer.detect import create_detector
    from eacfer.infer.recipe import FaceRecipe

    recipe = FaceRecipe(input_size, face_size, DEFAULT_MARGIN if margin is None else float(margin), float(shift or 0.0))

    crops: list[np.ndarray] = []
    detector = create_detector("mediapipe", mode="full")
    try:
        for img in _variants(load_image(image), variants):
            dets = detector.detect(img)[:1]  # the portrait has one face
            if not dets:
                log.debug("calibration: no face in a portrait variant (%s), skipped", img.shape)
                continue
            crops.extend(recipe.inputs(img, dets))
    finally:
        detector.close()
    if not crops:
        raise ValueError(f"{image}: no face found in any variant of the portrait")
    return np.stack(crops)


def synthetic_crops(input_size: int, face_size: int | None = None, n_train: int = 0, n_test: int = 0,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train crops, test crops) of a synthetic RAF-DB-shaped set drawn at ``face_size``, resized to the input
    as the predictor resizes an already-aligned face (``detector="none"``: the same :class:`FaceRecipe`).

    Example:
        >>> tr, te = synthetic_crops(48, n_train=10, n_test=10)  # doctest: +SKIP
    """
    from eacfer.data.imageio import load_image
    from eacfer.data.synth import generate_rafdb
    from eacfer.infer.recipe import FaceRecipe

    face = int(face_size or input_size)
    recipe = FaceRecipe(input_size, face_size, whole_image=True)
    with tempfile.TemporaryDirectory(prefix="eacfer-calib-") as tmp:
        root = generate_rafdb(tmp, n_train=n_train, n_test=n_test, seed=seed, size=face)
        files = sorted((root / "Image" / "aligned").glob("*_aligned.jpg"))

        def load(prefix: str) -> np.ndarray:
            imgs = [recipe.inputs(load_image(f), [])[0] for f in files if f.name.startswith(prefix)]
            return np.stack(imgs) if imgs else np.zeros((0, input_size, input_size, 3), np.uint8)

        return load("train_"), load("test_")


@dataclass
class CropSets:
    """Calibration crops and named check sets, with a description of each for the model's metadata."""

    calibration: np.ndarray
    checks: dict[str, np.ndarray]
    description: dict[str, str]


def default_crop_sets(input_size: int, face_size: int | None = None, n_synthetic_calibration: int = 200,
                      n_synthetic_check: int = 300, seed: int = 0, margin: float | None = None,
                      shift: float | None = None) -> CropSets:
    """The calibration/check crops the int8 path uses by default (synthetic faces + portrait variants).

    Example:
        >>> sets = default_crop_sets(48)  # doctest: +SKIP
        >>> sorted(sets.checks)           # doctest: +SKIP
        ['portrait', 'synthetic_test']
    """
    syn_train, syn_test = synthetic_crops(input_size, face_size, n_synthetic_calibration, n_synthetic_check, seed)
    cal_portrait = portrait_crops(input_size, face_size, CALIBRATION_VARIANTS, margin=margin, shift=shift)
    check_portrait = portrait_crops(input_size, face_size, CHECK_VARIANTS, margin=margin, shift=shift)
    face = int(face_size or input_size)
    synth = f"eacfer.data.synth.generate_rafdb(seed={seed}, size={face})"
    return CropSets(
        calibration=np.concatenate([syn_train, cal_portrait]),
        checks={"synthetic_test": syn_test, "portrait": check_portrait},
        description={
            "calibration": f"{len(syn_train)} synthetic train faces ({synth}) + {len(cal_portrait)} crops of "
                           f"{CALIBRATION_VARIANTS.describe()}",
            "synthetic_test": f"{len(syn_test)} synthetic test faces ({synth})",
            "portrait": f"{len(check_portrait)} crops of {CHECK_VARIANTS.describe()}",
        },
    )
