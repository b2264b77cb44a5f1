"""Evaluate a model file (``model.pt``) on a dataset split and write metrics, confusion plot and predictions.

Outputs in ``out_dir``: ``metrics.json`` (accuracy, mean_class_accuracy, per_class, confusion with rows =
truth, n, plus provenance), ``confusion.png`` and ``predictions.csv`` (file, truth, prediction,
p_<class>...).

Cross-dataset evaluation: when the model's classes differ from the dataset's (a RAF-DB model on FER2013,
FERPlus or AffectNet), classes are paired by name through the synonym table of :mod:`eacfer.data.classes`.
Model classes the dataset lacks are left out of the argmax (the softmax runs over the shared classes
only); dataset classes the model lacks are reported and their images skipped. Metrics are over the shared
classes, named as the dataset names them; ``metrics.json`` records the mapping under ``class_mapping``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
    classes: int | None = None,
    crop_cache: str | os.PathLike[str] | None = None,
    image_check: Callable[[Sequence[str]], dict[str, Any]] | None = None,
    tta: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model_path`` on ``split`` of the dataset at ``data_root``.

    Confidence is measured too (:mod:`eacfer.training.confidence`): ``metrics["confidence"]`` holds ECE
    (15 bins), NLL and Brier score of the raw softmax (``before``) and, for a calibrated model file, of the
    temperature-scaled probabilities (``after``); ``reliability.png`` is written beside ``confusion.png``.
    The written probabilities are the calibrated ones, as every runtime gives them. ``tta="flip"`` averages
    the probabilities of each image and its mirror (accuracy without it: ``metrics["tta"]``).

    Classes are matched by name (see the module docstring), so any model can be evaluated on any set
    that shares at least one class with it. Returns the metrics dict (as in ``metrics.json``), with
    ``outputs`` naming the files written when ``out_dir`` is given. ``image_check`` (e.g.
    :func:`eacfer.infer.cropcheck.face_crop_check`) is given the image files before the evaluation; its
    ``warning``, if any, is logged, and its report kept in the metrics as ``image_check``.

    Example:
        >>> m = evaluate_checkpoint("runs/demo/model.pt", "data/RAF-DB", out_dir="runs/demo/eval")  # doctest: +SKIP
        >>> m["accuracy"], m["per_class"]["Happiness"]                                             # doctest: +SKIP
    """
    from eacfer.checkpoint import load_model
    from eacfer.data.classes import match_classes
    from eacfer.data.datasets import FERDataset, load_split
    from eacfer.data.transforms import EvalTransform
    from eacfer.training import engine
    from eacfer.training.confidence import plot_reliability
    from eacfer.training.metrics import classification_metrics, named_confusion, plot_confusion
    from eacfer.utils.atomic import write_json, write_text
    from eacfer.utils.device import resolve_device

    if tta not in (None, "none", "flip"):
        raise ValueError(f"unknown --tta {tta!r}; choose none or flip")
    flip = tta == "flip"
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if not Path(data_root).exists():
        raise FileNotFoundError(f"{data_root}: dataset folder not found")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise NotADirectoryError(f"{out_dir}: --out exists and is a file, expected a folder")
    dev = resolve_device(device)
    model, info = load_model(model_path, device=dev)
    data = load_split(data_root, split=split, format=format, strict=strict, classes=classes, cache_dir=crop_cache,
                      progress=progress)
    for p in data.problems[:20]:
        log.warning("%s", p)
    mapping = match_classes(info.class_names, data.class_names)
    class_names = list(info.class_names)
    skipped_by_class: dict[str, int] = {}
    if not mapping.identical:
        data, skipped_by_class = restrict_to_shared(data, mapping)
        model = SelectLogits(model, [m for _, m in mapping.shared])
        class_names = mapping.shared_names
        log.warning("cross-dataset evaluation: model classes %s excluded from the argmax; dataset classes %s "
                    "skipped (%d images); matched %s", list(mapping.model_only), list(mapping.dataset_only),
                    sum(skipped_by_class.values()), mapping.to_dict()["matched"])
    checked = None
    if image_check is not None:
        files = [str(s.path) for s in data.samples if s.path is not None]  # (CSV formats hold pixels: crops)
        checked = image_check(files) if files else None
        if checked and checked.get("warning"):
            log.warning("%s", checked["warning"])
    ds = FERDataset(data, transform=EvalTransform(info.input_size, info.mean, info.std), cache=False, strict=strict,
                    progress=progress)
    if len(ds) == 0:
        raise ValueError(f"{data_root}: no usable {split} images")
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=dev.type == "cuda", generator=torch.Generator().manual_seed(0))
    res = engine.evaluate(model, loader, class_names, device=dev, progress=progress, return_predictions=True,
                          flip=flip)
    pred = res.pop("predictions")
    res.pop("seconds", None)
    confidence, tta_record = _confidence(pred, info.temperature, flip)
    if flip:
        res.update(classification_metrics(pred["labels"], pred["preds"], class_names))
    metrics: dict[str, Any] = {
        **res,
        "class_names": class_names,
        "confusion_axes": named_confusion(res["confusion"], class_names),  # rows true, columns predicted
        "class_mapping": {**mapping.to_dict(), "skipped_images_of_dataset_only_classes": skipped_by_class},
        "dropped_rows": dict(data.stats.get("dropped", {})),
        "skipped_images": len(ds.skipped),
        "skipped_entries": len(data.problems),
        "split": split,
        "format": str(data.format),
        "data": str(Path(data_root).resolve()),
        "model": str(Path(model_path).resolve()),
        "backbone": info.backbone,
        "input_size": info.input_size,
        "confidence": confidence,
        "tta": tta_record,
    }
    if checked is not None:
        metrics["image_check"] = checked
    log.info("%s on %s/%s: accuracy %.4f, mean-class accuracy %.4f (n=%d)", Path(model_path).name, data_root, split,
             metrics["accuracy"], metrics["mean_class_accuracy"], metrics["n"])
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = _file_names(ds)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "truth", "prediction"] + [f"p_{c}" for c in class_names])
        for i, idx in enumerate(pred["indices"]):
            w.writerow([names[int(idx)], class_names[int(pred["labels"][i])], class_names[int(pred["preds"][i])]]
                       + [f"{float(p):.6f}" for p in pred["probs"][i]])
        write_text(out / "predictions.csv", buf.getvalue())
        plot_confusion(metrics["confusion"], class_names, out / "confusion.png",
                       title=f"{info.backbone} on {split} (acc {metrics['accuracy']:.3f}, n={metrics['n']})")
        plot_reliability(confidence["before"], out / "reliability.png", after=confidence["after"],
                         title=f"{info.backbone} on {split}: reliability (n={metrics['n']})")
        metrics["outputs"] = {k: str(out / f) for k, f in
                              (("metrics", "metrics.json"), ("confusion", "confusion.png"), ("predictions", "predictions.csv"),
                               ("reliability", "reliability.png"))}
        write_json(out / "metrics.json", metrics)
    return metrics


def _confidence(pred: dict[str, Any], temperature: float, flip: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Confidence metrics before/after the model's temperature; sets ``pred["probs"]``/``["preds"]`` to what the
    runtimes output (temperature-scaled, flip-averaged with ``flip``). Returns (confidence, tta record)."""
    from eacfer.training.confidence import confidence_metrics, softmax_t

    labels = pred["labels"]
    before = confidence_metrics(pred["probs"], labels)
    calibrated = temperature != 1.0
    after = None
    if calibrated:
        pred["probs"] = softmax_t(pred["logits"], temperature).astype(np.float32)
        after = {**confidence_metrics(pred["probs"], labels), "temperature": temperature}
    tta = None
    if flip:
        plain_acc = float((pred["preds"] == labels).mean())
        pred["probs"] = ((softmax_t(pred["logits"], temperature) + softmax_t(pred["flip_logits"], temperature))
                         / 2).astype(np.float32)
        pred["preds"] = pred["probs"].argmax(1).astype(np.int64)
        tta = {"mode": "flip", "accuracy_without_tta": plain_acc,
               "accuracy_with_tta": float((pred["preds"] == labels).mean()),
               "confidence_with_tta": {k: v for k, v in confidence_metrics(pred["probs"], labels).items()
                                       if k != "reliability"}}
    conf = {"temperature": temperature, "calibrated": calibrated, "before": before, "after": after,
            "definitions": "ECE: 15 equal-width bins of the top-1 probability; NLL: mean -log p(true); "
                           "Brier: mean sum_k (p_k - onehot_k)^2; before = raw softmax, after = softmax(z/T)"}
    return conf, tta


class SelectLogits(torch.nn.Module):
    """A model whose logits are restricted to the given columns (the classes a dataset shares with it).

    Example:
        >>> SelectLogits(torch.nn.Identity(), [2, 0])(torch.tensor([[1.0, 2.0, 3.0]])).tolist()
        [[3.0, 1.0]]
    """

    def __init__(self, model: torch.nn.Module, columns: list[int]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("columns", torch.as_tensor(columns, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        # the wrapper is built after the model was moved to its device: the index follows the logits (a no-op
        # when it is already there), else index_select mixes a CPU index with CUDA logits
        return logits.index_select(1, self.columns.to(logits.device))


def restrict_to_shared(data: Any, mapping: Any) -> tuple[Any, dict[str, int]]:
    """The split with only the samples of shared classes, relabelled to positions in ``mapping.shared``;
    also returns how many samples each dataset-only class lost.

    Example:
        >>> sub, lost = restrict_to_shared(split, match_classes(RAFDB_CLASSES, split.class_names))  # doctest: +SKIP
    """
    import dataclasses

    new_index = {d: i for i, (d, _) in enumerate(mapping.shared)}
    lost: dict[str, int] = {}
    samples = []
    for s in data.samples:
        if s.label in new_index:
            samples.append(dataclasses.replace(s, label=new_index[s.label], soft=None))
        else:
            name = data.class_names[s.label]
            lost[name] = lost.get(name, 0) + 1
    if not samples:
        raise ValueError(f"{data.root}: no {data.split} images of a class the model knows "
                         f"(model-only {list(mapping.model_only)}, dataset-only {list(mapping.dataset_only)})")
    shared_names = [data.class_names[d] for d, _ in mapping.shared]
    return dataclasses.replace(data, samples=samples, class_names=shared_names, label_mode="majority"), lost


def _file_names(ds: Any) -> list[str]:
    """Per-dataset-index file names relative to the dataset root when possible."""
    root = Path(getattr(getattr(ds, "split", None), "root", "") or "")
    names = []
    for s in ds.samples:
        path = getattr(s, "path", None)
        if path is None:  # pixels from a CSV (FER2013, FERPlus): the sample's name
            names.append(str(getattr(s, "name", "")))
            continue
        p = Path(str(path))
        try:
            names.append(p.relative_to(root).as_posix() if root and p.is_absolute() else p.as_posix())
        except ValueError:
            names.append(p.as_posix())
    return names
