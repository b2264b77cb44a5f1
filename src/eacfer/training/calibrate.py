"""``eacfer calibrate``: fit a model file's softmax temperature on a calibration split and store it in the file.

The calibration split is never the test split (:func:`calibration_split` refuses it):

* ``val`` (default): FERPlus's official validation split (PublicTest / ``FER2013Valid``); for other datasets
  (RAF-DB has no validation split) the part of *train* the model's own training held out with
  ``eacfer train --val-fraction F`` (rebuilt from the fraction and seed recorded in the model file).
* ``validation``: the dataset's validation split by name. For AffectNet that is ``validation.csv``, which
  eacfer also evaluates as AffectNet's test split: allowed only for those who hold it apart from testing,
  with a warning.

Once stored, the temperature travels in ``model.pt`` and in every ONNX export's metadata, and every runtime
applies it (:func:`eacfer.infer.runtime.onnx_session.softmax`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: split names that are (or may be) a dataset's test split: never used for fitting
TEST_SPLIT_NAMES = ("test", "test-private")


def calibration_split(data_root: str | os.PathLike[str], split: str, train_config: dict[str, Any], *,
                      format: str | None = None, strict: bool = False, classes: int | None = None,
                      crop_cache: str | os.PathLike[str] | None = None, progress: bool = False) -> Any:
    """The :class:`SplitData` to fit a temperature on (module docstring); test splits raise ``ValueError``.

    Example:
        >>> cal = calibration_split("data/RAF-DB", "val", info.train_config)  # doctest: +SKIP
    """
    from eacfer.data.datasets import detect_format, load_split
    from eacfer.data.formats import SPLITS
    from eacfer.data.holdout import split_holdout

    if split in TEST_SPLIT_NAMES:
        raise ValueError(f"--split {split}: a temperature is never fitted on the test split; use val "
                         "(a validation split, or the part of train held out by `eacfer train --val-fraction`)")
    fmt = format or detect_format(Path(data_root))
    opts: dict[str, Any] = {"format": fmt, "strict": strict, "classes": classes, "cache_dir": crop_cache,
                            "progress": progress}
    if split == "val" and "validation" in SPLITS.get(fmt, ()) and fmt != "affectnet":
        return load_split(data_root, split="validation", **opts)
    if split == "validation" and fmt == "affectnet":
        log.warning("%s: AffectNet's validation list is also what `eacfer eval` reports as its test split; "
                    "fit on it only if you test on other images", data_root)
    if split != "val":
        if split == "train":
            log.warning("fitting the temperature on the training split: the model has seen these images, so the "
                        "temperature comes out too low (overconfident); prefer a held-out split")
        return load_split(data_root, split=split, **opts)
    fraction = float(train_config.get("val_fraction") or 0.0)
    if fraction <= 0:
        raise ValueError(f"{data_root}: the {fmt} format has no validation split and this model held none out of "
                         "train; retrain with `eacfer train --val-fraction 0.1` (or give --split validation for a "
                         "dataset that has one)")
    label_file = train_config.get("label_file") if fmt in ("rafdb", "rafdb-kaggle") else None
    train = load_split(data_root, split="train", label_file=label_file, **opts)
    _, held = split_holdout(train, fraction, int(train_config.get("seed", 0)))
    log.info("calibration split: %d images held out of train by training (fraction %g, seed %s)",
             len(held.samples), fraction, train_config.get("seed", 0))
    return held


def calibrate_checkpoint(
    model_path: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    split: str = "val",
    out: str | os.PathLike[str] | None = None,
    format: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 0,
    strict: bool = False,
    progress: bool = True,
    classes: int | None = None,
    crop_cache: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Fit the temperature of ``model_path`` on ``split`` and write the model file with it (``out``, default
    ``model_path`` itself, replaced atomically; the weights are unchanged). Returns the calibration record.

    Example:
        >>> rec = calibrate_checkpoint("runs/eac/model.pt", "data/FERPlus")  # doctest: +SKIP
        >>> rec["temperature"], rec["nll_before"] > rec["nll_after"]          # doctest: +SKIP
        (1.61, True)
    """
    import datetime as dt

    import torch
    from torch.utils.data import DataLoader

    from eacfer.checkpoint import load_checkpoint, load_model, save_checkpoint
    from eacfer.data.datasets import FERDataset
    from eacfer.data.transforms import EvalTransform
    from eacfer.modelinfo import info_from_payload
    from eacfer.training import engine
    from eacfer.training.confidence import confidence_metrics, fit_temperature, softmax_t
    from eacfer.utils.device import resolve_device

    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if not Path(data_root).exists():
        raise FileNotFoundError(f"{data_root}: dataset folder not found")
    payload = load_checkpoint(model_path)
    info = info_from_payload(payload, str(model_path))
    data = calibration_split(data_root, split, info.train_config, format=format, strict=strict, classes=classes,
                             crop_cache=crop_cache, progress=progress)
    if [str(c) for c in data.class_names] != list(info.class_names):
        raise ValueError(f"{data_root}: the set's classes {list(data.class_names)} differ from the model's "
                         f"{list(info.class_names)}; calibrate on a set with the model's own classes")
    dev = resolve_device(device)
    model, _ = load_model(model_path, device=dev)
    ds = FERDataset(data, transform=EvalTransform(info.input_size, info.mean, info.std), cache=False, strict=strict,
                    progress=progress)
    if len(ds) == 0:
        raise ValueError(f"{data_root}: no usable {split} images to calibrate on")
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    pred = engine.predict(model, loader, device=dev, progress=progress, desc="calibrate")
    t = fit_temperature(pred["logits"], pred["labels"])
    before = confidence_metrics(softmax_t(pred["logits"]), pred["labels"])
    after = confidence_metrics(softmax_t(pred["logits"], t), pred["labels"])
    record = {
        "temperature": t, "method": "temperature scaling (one scalar, NLL minimised with L-BFGS)",
        "data": str(Path(data_root).resolve()), "format": str(data.format), "split": str(data.split), "n": len(ds),
        "nll_before": before["nll"], "nll_after": after["nll"], "ece_before": before["ece"], "ece_after": after["ece"],
        "brier_before": before["brier"], "brier_after": after["brier"],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    target = Path(out) if out is not None else Path(model_path)
    if target.exists() and target.is_dir():
        raise IsADirectoryError(f"{target}: --out is a folder, expected a model file path")
    save_checkpoint(target, {**payload, "temperature": t, "calibration": record})
    log.info("temperature %.3f fitted on %s/%s (n=%d): NLL %.4f -> %.4f, ECE %.4f -> %.4f; wrote %s", t, data_root,
             data.split, len(ds), before["nll"], after["nll"], before["ece"], after["ece"], target)
    return {**record, "model": str(target)}
