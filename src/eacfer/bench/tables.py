"""Tables of the noisy-label grid: measured values from the runs' own summaries, published rows apart.

``noisy_table.csv`` has one row per (source, backbone, method, metric) and one column per noise level;
its ``source`` column is ``measured`` or ``published: …`` so the two never share a row. The markdown
shows measured and published values in separate tables.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eacfer.bench.grid import GridCell, RunResult

#: metric key in summary.json → (table title, short name). Accuracies are fractions there, percent here.
TABLE_METRICS: dict[str, tuple[str, str]] = {
    "last5_mean_accuracy": ("Mean test accuracy of the last 5 epochs (%), EAC's reporting", "last-5 mean"),
    "best_accuracy": ("Best test accuracy over all epochs (%)", "best"),
    "final_mean_class_accuracy": ("Mean-class test accuracy at the final epoch (%)", "mean-class"),
}
TABLE_MD = "noisy_table.md"
TABLE_CSV = "noisy_table.csv"
RUNS_DIR = "runs"


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-markdown table.

    Example:
        >>> print(md_table(["a", "b"], [["1", "2"]]))
        | a | b |
        |---|---|
        | 1 | 2 |
    """
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def columns_of(cells: Sequence[GridCell]) -> list[GridCell]:
    """One representative cell per noise level, in grid order."""
    seen: dict[str, GridCell] = {}
    for c in cells:
        seen.setdefault(c.tag, c)
    return list(seen.values())


def rows_of(cells: Sequence[GridCell]) -> list[tuple[str, str]]:
    """(backbone, method) rows in grid order."""
    rows: list[tuple[str, str]] = []
    for c in cells:
        if (c.backbone, c.method) not in rows:
            rows.append((c.backbone, c.method))
    return rows


def measured_table(results: Sequence[RunResult], metric: str) -> tuple[list[tuple[str, str]], list[GridCell], list[list[float | None]]]:
    """``(rows, columns, values)`` of one metric in percent; a cell without a finished run is None."""
    cells = [r.cell for r in results]
    rows, cols = rows_of(cells), columns_of(cells)
    by_key = {(r.cell.backbone, r.cell.method, r.cell.tag): r for r in results}
    values = []
    for b, m in rows:
        line: list[float | None] = []
        for col in cols:
            r = by_key.get((b, m, col.tag))
            line.append(r.metric(metric) if r is not None and r.status == "done" else None)
        values.append(line)
    return rows, cols, values


def averaged_epochs(results: Sequence[RunResult]) -> list[int]:
    """How many epochs each finished run's "last-5 mean" really averaged (fewer when fewer ran).

    Example:
        >>> averaged_epochs([])
        []
    """
    out = []
    for r in results:
        if r.status != "done" or r.summary.get("last5_mean_accuracy") is None:
            continue
        n = r.summary.get("last5_mean_epochs")
        if n is None:  # summaries written before last5_mean_epochs existed: min(5, epochs run)
            n = min(5, int(r.summary.get("epochs") or len(r.history) or 5))
        out.append(int(n))
    return out


def published_row(published: Any, backbone: str, method: str, cols: Sequence[GridCell]) -> tuple[dict[str, Any], list[float | None]] | None:
    """The published EAC-repository row for (backbone, method) aligned to the grid's noise columns."""
    ref = published.noisy_reference(backbone, method)
    if ref is None:
        return None
    vals = [ref["values"].get(f"{c.noise_rate:.1f}") if c.noise_rate is not None else None for c in cols]
    return ref, vals


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def write_noisy_tables(out: str | os.PathLike[str], results: Sequence[RunResult], published: Any,
                       meta: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``noisy_table.md`` and ``noisy_table.csv`` into ``out`` (the plots: :mod:`eacfer.bench.plots`)."""
    from eacfer.bench.provenance import describe_machine
    from eacfer.utils.atomic import write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cols = columns_of([r.cell for r in results])
    files: dict[str, Path] = {}

    # CSV: one row per (source, backbone, method, metric); the source column keeps measured and published apart.
    header = ["source", "backbone", "method", "metric", *[c.column for c in cols]]
    lines = [header]
    for metric in TABLE_METRICS:
        rows, _, values = measured_table(results, metric)
        for (b, m), vals in zip(rows, values, strict=True):
            lines.append(["measured", b, m, metric, *["" if v is None else repr(v) for v in vals]])
    for b, m in rows_of([r.cell for r in results]):
        pr = published_row(published, b, m, cols)
        if pr is not None:
            ref, vals = pr
            lines.append([f"published: {ref['model']} [{ref['source']}] {published.cite(ref['source'])}",
                          ref["backbone"], m, ref["metric"], *["" if v is None else repr(v) for v in vals]])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    write_text(out / TABLE_CSV, buf.getvalue())
    files["csv"] = out / TABLE_CSV

    md = ["# Noisy-label benchmark", ""]
    if meta:
        md += [f"- **Measured here** with `{meta.get('command', '?')}`",
               f"- commit `{meta.get('commit', '?')}`, {meta.get('date', '?')}",
               f"- machine: {describe_machine(meta.get('machine', {}))}"]
    first = next((r for r in results if r.run_dir.joinpath("config.yaml").is_file()), None)
    if first is not None:
        md.append(f"- data: {_data_line(first.run_dir / 'config.yaml')}")
    md += [f"- runs: {sum(r.status == 'done' for r in results)} of {len(results)} finished "
           f"(accuracies on the test split in %, from each run's `summary.json`)", ""]
    for metric, (title, _) in TABLE_METRICS.items():
        rows, _, values = measured_table(results, metric)
        md += [f"## Measured here: {title}", "", md_table(["backbone", "method", *[c.column for c in cols]],
               [[b, m, *map(_fmt, v)] for (b, m), v in zip(rows, values, strict=True)]), ""]
        if metric == "last5_mean_accuracy":
            n = averaged_epochs(results)
            if n and min(n) < 5:
                span = f"{min(n)}" if min(n) == max(n) else f"{min(n)} to {max(n)}"
                md += [f"> Fewer than 5 epochs ran: these are means of the last {span} epoch(s), not last-5 means.", ""]
        md += _aligned_published_md(published, rows, cols, metric)  # published rows only under their own statistic
    md += _published_md(published, results, cols)
    md += ["## Runs", "", md_table(["run", "status", "this invocation", "epochs", "train seconds",
                                    "recipe · pipeline · weights"],
           [[f"`{RUNS_DIR}/{r.cell.name}`", r.status, r.action or "—", str(r.summary.get("epochs", "—")),
             f"{float(r.summary['seconds']):.0f}" if r.summary.get("seconds") is not None else "—",
             _made_with(r.summary)] for r in results]), ""]
    write_text(out / TABLE_MD, "\n".join(md))
    files["md"] = out / TABLE_MD
    return files


def _made_with(summary: dict[str, Any]) -> str:
    """How a run was made, from its summary (runs made before 0.2 say nothing: ``—``)."""
    if not summary.get("recipe"):
        return "—"
    weights = summary.get("pretrained")
    return (f"{summary['recipe']} · {summary.get('pipeline', '?')} · "
            f"{'random init' if weights in (None, 'none') else Path(str(weights)).name}")


def _aligned_published_md(published: Any, rows: Sequence[tuple[str, str]], cols: Sequence[GridCell],
                          metric: str = "last5_mean_accuracy") -> list[str]:
    """The published rows matching the measured ones and reporting the same statistic (``metric``), in the
    same layout, as a separate table: like is compared with like (a last-5 mean never sits next to a best)."""
    body = []
    for b, m in rows:
        pr = published_row(published, b, m, cols)
        if pr is not None and pr[0].get("metric", "last5_mean_accuracy") == metric:
            ref, vals = pr
            body.append([f"{ref['model']} (for {b} {m})", m, *map(_fmt, vals), f"[{ref['source']}]"])
    if not body:
        return []
    return [f"**Published, same layout (not measured here)**: {TABLE_METRICS[metric][1]} accuracy from the EAC "
            "repository (real RAF-DB, the paper's recipe: pretrained backbone, fp32 reference pipeline); `—` where it "
            "has no such noise level. Compare with the measured table just above: same statistic.", "",
            md_table(["published model", "method", *[c.column for c in cols], "source"], body), ""]


def _published_md(published: Any, results: Sequence[RunResult], cols: Sequence[GridCell]) -> list[str]:
    keys = ["0.0", "0.1", "0.2", "0.3"]
    head = ["model", "method", "clean", "10%", "20%", "30%", "metric", "source"]
    body = []
    for e in published.noisy:
        body.append([e["model"], e["method"], *[_fmt(e["values"].get(k)) for k in keys], e["metric"], f"[{e['source']}]"])
    refs = sorted({e["source"] for e in published.noisy})
    md = ["## Published (not measured here): RAF-DB test accuracy (%) under label noise", "",
          "Rows of the EAC repository pair with the measured rows above by backbone "
          "(`resnet50_msceleb` ↔ ResNet-50, `mobilenet_v2` ↔ MobileNet) and method; the ResNet-18 rows are from the "
          "EAC paper, for context. The measured grid may use other data, epochs or image size, so compare with care.", "",
          md_table(head, body), ""]
    md += [f"- [{k}] {published.cite(k)}" for k in refs] + [""]
    return md


def _data_line(config_yaml: Path) -> str:
    try:
        import yaml

        c = yaml.safe_load(config_yaml.read_text(encoding="utf-8")) or {}
    except (OSError, ValueError) as e:
        return f"(unreadable {config_yaml.name}: {e})"
    return (f"`{c.get('data')}` ({c.get('format')}, {c.get('train_images')} train / {c.get('test_images')} test images), "
            f"{c.get('epochs')} epochs, image size {c.get('image_size')}, batch {c.get('batch_size')}, lr {c.get('lr')}, "
            f"noise seed {c.get('noise_seed')}")


def read_noisy_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Read ``noisy_table.csv`` back (one dict per row)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


