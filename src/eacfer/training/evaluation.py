"""Evaluate a model file (``model.pt``) on a dataset split and write metrics, confusion plot and predictions.

Outputs in ``out_dir``: ``metrics.json`` (accuracy, mean_class_accuracy, per_class, confusion with rows =
truth, n, plus provenance), ``confusion.png`` and ``predictions.csv`` (file, truth, prediction,
p_<class>...).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

log = logging.getLogger(__name__)


def evaluate_checkpoint(
    model_path: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    split: str = "test",
    format: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 0,
    strict: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model_path`` on ``split`` of the dataset at ``data_root``.

    The model's class names must match the dataset's (same names, same order). Returns the metrics
    dict (as in ``metrics.json``), with ``outputs`` naming the files written when ``out_dir`` is given.

    Example:
        >>> m = evaluate_checkpoint("runs/demo/model.pt", "data/RAF-DB", out_dir="runs/demo/eval")  # doctest: +SKIP
        >>> m["accuracy"], m["per_class"]["Happiness"]                                             # doctest: +SKIP
    """
    from eacfer.checkpoint import load_model
    from eacfer.data.datasets import FERDataset, load_split
    from eacfer.data.transforms import EvalTransform
    from eacfer.training import engine
    from eacfer.training.metrics import named_confusion, plot_confusion
    from eacfer.utils.atomic import write_json, write_text
    from eacfer.utils.device import resolve_device

    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if split not in ("train", "test"):
        raise ValueError(f"--split must be train or test, got {split!r}")
    if not Path(data_root).exists():
        raise FileNotFoundError(f"{data_root}: dataset folder not found")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise NotADirectoryError(f"{out_dir}: --out exists and is a file, expected a folder")
    dev = resolve_device(device)
    model, info = load_model(model_path, device=dev)
    data = load_split(data_root, split=split, format=format, strict=strict)
    for p in data.problems[:20]:
        log.warning("%s", p)
    if [str(c) for c in data.class_names] != list(info.class_names):
        raise ValueError(f"{data_root}: dataset classes {list(data.class_names)} do not match the model's "
                         f"{info.class_names} ({model_path})")
    ds = FERDataset(data, transform=EvalTransform(info.input_size, info.mean, info.std), cache=False, strict=strict,
                    progress=progress)
    for file, reason in ds.skipped[:20]:
        log.warning("skipped %s: %s", file, reason)
    if len(ds) == 0:
        raise ValueError(f"{data_root}: no usable {split} images")
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=dev.type == "cuda", generator=torch.Generator().manual_seed(0))
    res = engine.evaluate(model, loader, info.class_names, device=dev, progress=progress, return_predictions=True)
    pred = res.pop("predictions")
    res.pop("seconds", None)
    metrics: dict[str, Any] = {
        **res,
        "class_names": list(info.class_names),
        "confusion_axes": named_confusion(res["confusion"], info.class_names),  # rows true, columns predicted
        "skipped_images": len(ds.skipped),
        "skipped_entries": len(data.problems),
        "split": split,
        "format": str(data.format),
        "data": str(Path(data_root).resolve()),
        "model": str(Path(model_path).resolve()),
        "backbone": info.backbone,
        "input_size": info.input_size,
    }
    log.info("%s on %s/%s: accuracy %.4f, mean-class accuracy %.4f (n=%d)", Path(model_path).name, data_root, split,
             metrics["accuracy"], metrics["mean_class_accuracy"], metrics["n"])
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = _file_names(ds)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "truth", "prediction"] + [f"p_{c}" for c in info.class_names])
        for i, idx in enumerate(pred["indices"]):
            w.writerow([names[int(idx)], info.class_names[int(pred["labels"][i])], info.class_names[int(pred["preds"][i])]]
                       + [f"{float(p):.6f}" for p in pred["probs"][i]])
        write_text(out / "predictions.csv", buf.getvalue())
        plot_confusion(metrics["confusion"], info.class_names, out / "confusion.png",
                       title=f"{info.backbone} on {split} (acc {metrics['accuracy']:.3f}, n={metrics['n']})")
        metrics["outputs"] = {k: str(out / f) for k, f in
                              (("metrics", "metrics.json"), ("confusion", "confusion.png"), ("predictions", "predictions.csv"))}
        write_json(out / "metrics.json", metrics)
    return metrics


def _file_names(ds: Any) -> list[str]:
    """Per-dataset-index file names relative to the dataset root when possible."""
    root = Path(getattr(getattr(ds, "split", None), "root", "") or "")
    names = []
    for s in ds.samples:
        p = Path(str(getattr(s, "path", getattr(s, "name", ""))))
        try:
            names.append(p.relative_to(root).as_posix() if root and p.is_absolute() else p.as_posix())
        except ValueError:
            names.append(p.as_posix())
    return names
