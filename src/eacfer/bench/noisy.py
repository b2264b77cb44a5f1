"""The noisy-label grid: every backbone × method × noise level trained with the paper's recipe.

Each cell is one run directory ``OUT/runs/<backbone>_<method>_<noise tag>`` written by
:func:`eacfer.training.trainer.train`. The grid is resumable: a finished run (``summary.json`` says finished and
reached the planned epochs) is skipped, an interrupted one is resumed from its ``last.pt`` (the
trainer then ends bit-identical to an uninterrupted run), and one whose ``last.pt`` is unreadable
starts over. The tables are built only from the runs' own ``summary.json``/``metrics.csv``.

Example:
    >>> cells = plan_grid(["mobilenet_v2"], ["eac", "ce"], noise_rates=[0.0, 0.3])
    >>> [c.name for c in cells]
    ['mobilenet_v2_eac_clean', 'mobilenet_v2_eac_noise30', 'mobilenet_v2_ce_clean', 'mobilenet_v2_ce_noise30']
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eacfer.bench.grid import GridCell, RunResult, noise_column, noise_tag, safe_name  # noqa: F401  (re-exported)
from eacfer.bench.tables import (  # noqa: F401  (re-exported: the grid's table API lives with the grid)
    RUNS_DIR,
    TABLE_CSV,
    TABLE_MD,
    TABLE_METRICS,
    columns_of,
    measured_table,
    published_row,
    read_noisy_csv,
    rows_of,
    write_noisy_tables,
)

log = logging.getLogger(__name__)


def rate_from_label_file(path: str | os.PathLike[str]) -> float | None:
    """The noise rate a label file's name announces (EAC names: ``noise01.txt`` = 10 %), else None.

    Example:
        >>> rate_from_label_file("EmoLabel/noise02.txt"), rate_from_label_file("list_patition_label.txt")
        (0.2, 0.0)
    """
    stem = Path(path).stem.lower()
    if stem in ("clean", "list_patition_label", "list_partition_label") or stem.startswith("clean"):
        return 0.0
    m = re.search(r"(0?\.\d+)[_-]?noise", stem)
    if m:
        return float(m.group(1))
    m = re.search(r"noise[_-]?(\d+)", stem)
    if m:
        d = m.group(1)
        # EAC's convention: noise01/02/03 are 10/20/30 %; otherwise the digits are a percentage.
        return int(d) / 10 if len(d) == 2 and d[0] == "0" else int(d) / 100
    return None


def parse_label_files(specs: Sequence[str], data: str | os.PathLike[str] | None = None) -> list[tuple[str, float | None]]:
    """``["clean.txt", "0.1=noise01.txt"]`` → ``[(path, rate), ...]``; names are also looked up in DATA/EmoLabel.

    Example:
        >>> parse_label_files(["list_patition_label.txt", "0.25=my_noise.txt"], data="data/RAF-DB")  # doctest: +SKIP
        [('data/RAF-DB/EmoLabel/list_patition_label.txt', 0.0), ('my_noise.txt', 0.25)]
    """
    out: list[tuple[str, float | None]] = []
    for spec in specs:
        rate: float | None
        if "=" in spec:
            r, path = spec.split("=", 1)
            try:
                rate = float(r)
            except ValueError:
                raise ValueError(f"--label-files: {spec!r}: expected RATE=FILE with a number RATE") from None
        else:
            path, rate = spec, rate_from_label_file(spec)
        p = Path(path)
        if not p.is_file() and data is not None:
            for cand in (Path(data) / "EmoLabel" / path, Path(data) / path):
                if cand.is_file():
                    p = cand
                    break
        if not p.is_file():
            raise FileNotFoundError(f"{path}: label file not found (also looked in {data}/EmoLabel)")
        out.append((str(p), rate))
    return out


def plan_grid(
    backbones: Sequence[str],
    methods: Sequence[str],
    noise_rates: Sequence[float] | None = None,
    label_files: Sequence[tuple[str, float | None]] | None = None,
) -> list[GridCell]:
    """All cells, rows (backbone × method) in the given order, noise levels as given.

    Exactly one of ``noise_rates`` (injected noise) and ``label_files`` (``(path, rate)``) is used.
    """
    if not backbones or not methods:
        raise ValueError("the grid needs at least one backbone and one method")
    if (noise_rates is None) == (label_files is None):
        raise ValueError("give either --noise RATES or --label-files FILES")
    levels: list[tuple[str, float | None, str | None]] = []
    if noise_rates is not None:
        for r in noise_rates:
            if not 0.0 <= float(r) < 1.0:
                raise ValueError(f"--noise: rate {r} is outside [0, 1)")
            levels.append((noise_tag(float(r)), float(r), None))
    else:
        for path, rate in label_files or []:
            levels.append((safe_name(Path(path).stem), rate, path))
    tags = [t for t, _, _ in levels]
    if len(set(tags)) != len(tags) or not levels:
        raise ValueError(f"noise levels must be distinct and non-empty, got {tags}")
    if len(set(backbones)) != len(backbones) or len(set(methods)) != len(methods):
        raise ValueError("backbones and methods must not repeat")
    return [GridCell(b, m, t, r, f) for b in backbones for m in methods for t, r, f in levels]


# ---------------------------------------------------------------- running


def read_run(cell: GridCell, run_dir: Path, epochs: int | None = None) -> RunResult:
    """What ``run_dir`` holds: its summary, per-epoch metrics and whether it is finished."""
    summary: dict[str, Any] = {}
    sp = run_dir / "summary.json"
    if sp.is_file():
        try:
            summary = json.loads(sp.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            log.warning("%s: unreadable summary (%s); treating the run as unfinished", sp, e)
            summary = {}
    history: list[dict[str, float]] = []
    mp = run_dir / "metrics.csv"
    if mp.is_file():
        try:
            from eacfer.training.trainer import read_metrics_csv

            history = read_metrics_csv(mp)
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable metrics (%s)", mp, e)
    if not summary:
        status = "partial" if (run_dir / "last.pt").exists() else "missing"
    elif is_finished(summary, run_dir, epochs):
        status = "done"
    else:
        status = "partial"
    return RunResult(cell, run_dir, status, summary, history)


def is_finished(summary: dict[str, Any], run_dir: Path, epochs: int | None) -> bool:
    """A run is finished when its summary says so, it reached ``epochs`` and ``model.pt`` exists."""
    if not summary.get("finished") or not (run_dir / "model.pt").is_file():
        return False
    want = epochs if epochs is not None else summary.get("epochs_planned")
    return want is None or int(summary.get("epochs") or 0) >= int(want)


def _last_state_readable(path: Path) -> bool:
    from eacfer.checkpoint import load_checkpoint
    from eacfer.modelinfo import CheckpointError

    try:
        load_checkpoint(path)
    except CheckpointError as e:
        log.warning("%s; starting this run over", e)
        return False
    return True


#: recipe settings that change a finished run's numbers (checked when a finished run is skipped)
_RECIPE_KEYS = ("batch_size", "lr", "weight_decay", "gamma", "lam", "image_size", "seed", "noise_seed", "flip_view_requested")


def _config_differences(run_dir: Path, cfg: Any) -> list[str]:
    """Recipe settings in which a finished run's ``config.yaml`` differs from ``cfg``."""
    try:
        import yaml

        saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, ValueError):
        return []
    want = {**cfg.to_dict(), "flip_view_requested": cfg.flip_view}
    return [k for k in _RECIPE_KEYS if k in saved and saved[k] != want.get(k)]


def make_config(cell: GridCell, data: str, out: Path, train_options: dict[str, Any],
                pretrained: dict[str, str], noise_seed: int) -> Any:
    """The :class:`eacfer.training.trainer.TrainConfig` of one cell (unknown option names are an error)."""
    from dataclasses import fields

    from eacfer.training.trainer import TrainConfig

    names = {f.name for f in fields(TrainConfig)}
    fixed = {"data", "out", "backbone", "method", "label_file", "noise_rate", "noise_seed", "pretrained", "resume", "force"}
    bad = sorted(set(train_options) - names) + sorted(set(train_options) & fixed)
    if bad:
        raise ValueError(f"training option(s) not accepted by the grid: {', '.join(bad)}")
    kw = dict(train_options)
    kw.update(data=str(data), out=str(out), backbone=cell.backbone, method=cell.method,
              label_file=cell.label_file, noise_rate=0.0 if cell.label_file else float(cell.noise_rate or 0.0),
              noise_seed=int(noise_seed), pretrained=pretrained.get(cell.backbone))
    if kw.get("wandb"):  # one W&B run per cell, named after it, grouped by the grid (its --out folder's name)
        kw["wandb_name"] = cell.name
        kw["wandb_group"] = kw.get("wandb_group") or Path(out).parent.parent.name or "eacfer-noisy"
    return TrainConfig(**kw)


@dataclass
class NoisyBench:
    """A noisy-label grid bench: where the data is, which cells, how to train them.

    Example:
        >>> bench = NoisyBench(data="data/RAF-DB", out="bench/noisy",            # doctest: +SKIP
        ...                    cells=plan_grid(["mobilenet_v2"], ["eac", "ce"], [0.0, 0.1]),
        ...                    train_options={"epochs": 60})
        >>> results = bench.run()                                                # doctest: +SKIP
    """

    data: str
    out: str
    cells: list[GridCell]
    train_options: dict[str, Any] = field(default_factory=dict)
    pretrained: dict[str, str] = field(default_factory=dict)
    noise_seed: int = 0

    def run_dir(self, cell: GridCell) -> Path:
        return Path(self.out) / RUNS_DIR / cell.name

    @property
    def epochs(self) -> int:
        from eacfer.training.trainer import TrainConfig

        return int(self.train_options.get("epochs", TrainConfig.__dataclass_fields__["epochs"].default))

    def configs(self) -> list[Any]:
        """Every cell's TrainConfig, validated up front so a typo fails before hours of training."""
        unknown = sorted(set(self.pretrained) - {c.backbone for c in self.cells})
        if unknown:
            raise ValueError(f"--pretrained names backbone(s) not in the grid: {', '.join(unknown)}")
        from eacfer.training.config import RECIPE_WEIGHTS

        # backbones whose recipe needs weights are refused by validate() below (--pretrained B=none on purpose)
        for b in sorted({c.backbone for c in self.cells} - set(self.pretrained) - set(RECIPE_WEIGHTS)):
            log.warning("%s: no --pretrained weights; it trains from random initialisation, unlike the published "
                        "numbers (pre-trained backbones)", b)
        cfgs = [make_config(c, self.data, self.run_dir(c), self.train_options, self.pretrained, self.noise_seed)
                for c in self.cells]
        for cfg in cfgs:
            try:
                cfg.validate()
            except ValueError as e:  # name the grid's own option, not train's
                raise ValueError(str(e).replace("--pretrained FILE", f"--pretrained {cfg.backbone}=FILE")
                                 .replace("--pretrained imagenet|FILE", f"--pretrained {cfg.backbone}=imagenet|FILE")
                                 .replace("--pretrained none", f"--pretrained {cfg.backbone}=none")) from None
        return cfgs

    def collect(self) -> list[RunResult]:
        """The current state of every cell, without training."""
        return [read_run(c, self.run_dir(c), self.epochs) for c in self.cells]

    def run(self, train_fn: Callable[[Any], dict[str, Any]] | None = None) -> list[RunResult]:
        """Train every cell that is not finished (resuming interrupted ones); returns all cells' results.

        A run that fails is reported (``action`` starts with ``failed``) and the grid goes on.
        """
        if train_fn is None:
            from eacfer.training.trainer import train as train_fn
        cfgs = self.configs()
        results: list[RunResult] = []
        for i, (cell, cfg) in enumerate(zip(self.cells, cfgs, strict=True), 1):
            run_dir = self.run_dir(cell)
            before = read_run(cell, run_dir, self.epochs)
            if before.status == "done":
                diffs = _config_differences(run_dir, cfg)
                before.action = "skipped" + (f" (made with other {', '.join(diffs)})" if diffs else "")
                if diffs:
                    log.warning("%s: finished earlier with different %s; kept (delete the folder to retrain)",
                                cell.name, ", ".join(diffs))
                log.info("[%d/%d] %s: finished, skipped", i, len(cfgs), cell.name)
                results.append(before)
                continue
            last = run_dir / "last.pt"
            if last.exists() and _last_state_readable(last):
                cfg.resume, action = True, "resumed"
            elif run_dir.exists() and any(run_dir.iterdir()):
                cfg.force, action = True, "restarted"  # leftovers without a usable state: start over
            else:
                action = "trained"
            doing = {"resumed": "resuming", "restarted": "starting over", "trained": "training"}[action]
            log.info("[%d/%d] %s: %s (%d epochs)", i, len(cfgs), cell.name, doing, self.epochs)
            try:
                train_fn(cfg)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one broken run must not lose the rest of the grid
                log.error("%s: run failed: %s: %s", cell.name, type(e).__name__, e)
                action = f"failed: {type(e).__name__}: {e}"
            else:
                log.info("[%d/%d] %s: %s", i, len(cfgs), cell.name, action)  # said only once it is true
            res = read_run(cell, run_dir, self.epochs)
            res.action = action
            if action.startswith("failed"):
                res.status = "failed"
            results.append(res)
        return results


def run_noisy_bench(bench: NoisyBench, command: str | None = None, train: bool = True, plots: bool = True,
                    train_fn: Callable[[Any], dict[str, Any]] | None = None) -> tuple[list[RunResult], dict[str, Path]]:
    """Run (or with ``train=False`` only tabulate) the grid and write its tables, plots and ``bench_meta.json``.

    Example:
        >>> results, files = run_noisy_bench(bench)  # doctest: +SKIP
        >>> files["md"]                              # doctest: +SKIP
        PosixPath('bench/noisy/noisy_table.md')
    """
    from eacfer.bench.provenance import META_NAME, provenance
    from eacfer.bench.published import load_published
    from eacfer.utils.atomic import write_json

    out = Path(bench.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = provenance("noisy", command)
    if train:
        results = bench.run(train_fn)
    else:
        bench.configs()  # same validation as a real run
        results = bench.collect()
    write_json(out / META_NAME, meta)
    files = write_noisy_outputs(out, results, load_published(), meta=meta, plots=plots)
    return results, files


def write_noisy_outputs(out: str | os.PathLike[str], results: Sequence[RunResult], published: Any,
                        meta: dict[str, Any] | None = None, plots: bool = True) -> dict[str, Path]:
    """Write ``noisy_table.md/.csv`` (+ ``noisy_curves.png``, ``noisy_table.png``) into ``out``."""
    files = write_noisy_tables(out, results, published, meta=meta)
    if plots:
        from eacfer.bench.plots import plot_noisy_curves, plot_noisy_table

        files["curves"] = plot_noisy_curves(results, Path(out) / "noisy_curves.png")
        files["table_png"] = plot_noisy_table(results, published, Path(out) / "noisy_table.png")
    return files
