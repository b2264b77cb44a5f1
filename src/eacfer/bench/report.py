"""``RESULTS.md`` from whatever bench outputs exist, in two separate parts: measured here, and published.

Part 1 ("Measured here") holds only figures this project measured, each bench with its command, git
commit, machine and date (from its ``bench_meta.json``). Part 2 ("Published") holds only figures from
papers and repositories, each with its source. No table column mixes the two.

Example:
    >>> build_report(["bench/noisy", "bench/efficiency"], "bench/report")  # doctest: +SKIP
    PosixPath('bench/report/RESULTS.md')
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eacfer.bench.efficiency_tables import EFFICIENCY_CSV, PLOT_PNG, efficiency_table_md, read_efficiency_csv
from eacfer.bench.provenance import META_NAME, describe_machine
from eacfer.bench.tables import TABLE_CSV, TABLE_METRICS, _data_line, md_table, read_noisy_csv

log = logging.getLogger(__name__)

REPORT_NAME = "RESULTS.md"
MEASURED_HEADING = "Part 1: Measured here"
PUBLISHED_HEADING = "Part 2: Published (not measured here)"
NOISY_PNGS = ("noisy_curves.png", "noisy_table.png")


@dataclass
class BenchOutput:
    """One bench output folder: its kind, provenance and files."""

    path: Path
    kind: str  # "noisy" | "efficiency"
    meta: dict[str, Any] = field(default_factory=dict)
    pngs: list[Path] = field(default_factory=list)


def find_outputs(inputs: Sequence[str | os.PathLike[str]]) -> list[BenchOutput]:
    """Bench output folders in ``inputs`` (each an output folder or a folder of them, two levels deep)."""
    found: list[BenchOutput] = []
    seen: set[Path] = set()
    for root in inputs:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such bench output folder")
        if not root.is_dir():
            raise NotADirectoryError(f"{root}: expected a bench output folder")
        cands = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
        cands += [q for p in cands[1:] for q in sorted(p.iterdir()) if q.is_dir() and q.name != "runs"]
        for d in cands:
            rd = d.resolve()
            if rd in seen:
                continue
            for kind, marker, pngs in (("noisy", TABLE_CSV, NOISY_PNGS), ("efficiency", EFFICIENCY_CSV, (PLOT_PNG,))):
                if (d / marker).is_file():
                    seen.add(rd)
                    found.append(BenchOutput(d, kind, _read_meta(d), [d / p for p in pngs if (d / p).is_file()]))
    return found


def _read_meta(d: Path) -> dict[str, Any]:
    p = d / META_NAME
    if not p.is_file():
        log.warning("%s: no %s; the report cannot say how these figures were made", d, META_NAME)
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        log.warning("%s: unreadable (%s)", p, e)
        return {}


def _provenance_md(meta: dict[str, Any]) -> list[str]:
    if not meta:
        return ["- provenance: unknown (no bench_meta.json next to these outputs)"]
    return [f"- command: `{meta.get('command', '?')}`",
            f"- commit: `{meta.get('commit', '?')}`",
            f"- machine: {describe_machine(meta.get('machine', {}))}",
            f"- date: {meta.get('date', '?')}"]


def _noisy_md(b: BenchOutput) -> list[str]:
    rows = [r for r in read_noisy_csv(b.path / TABLE_CSV) if r.get("source") == "measured"]
    if not rows:
        return ["No finished runs in this grid yet.", ""]
    cols = [c for c in rows[0] if c not in ("source", "backbone", "method", "metric")]
    md: list[str] = []
    configs = sorted((b.path / "runs").glob("*/config.yaml"))
    if configs:
        md += [f"Data and recipe (first run): {_data_line(configs[0])}; test accuracy in %, from each run's "
               "`summary.json`. In `noisy_table.png` the dashed lines are the published EAC numbers (Part 2).", ""]
    for metric, (title, _) in TABLE_METRICS.items():
        mrows = [r for r in rows if r["metric"] == metric]
        if not mrows:
            continue
        body = [[r["backbone"], r["method"], *[f"{float(r[c]):.2f}" if r[c] else "—" for c in cols]] for r in mrows]
        md += [f"**{title}** (measured)", "", md_table(["backbone", "method", *cols], body), ""]
    md += ["Like with like: the published EAC figures (Part 2) are last-5 means of the official fp32 pipeline "
           "from a pretrained backbone, so compare them with the *last-5 mean* table, from runs made with "
           "`--recipe paper` and the recipe's weights; *best* picks its epoch on the test set and reads higher.", ""]
    return md


def _copy_pngs(b: BenchOutput, out: Path, prefix: str) -> list[str]:
    from eacfer.utils.atomic import atomic_path

    names = []
    for png in b.pngs:
        name = f"{prefix}{png.name}"
        dst = out / name
        if png.resolve() != dst.resolve():
            with atomic_path(dst) as tmp:
                shutil.copyfile(png, tmp)
        names.append(name)
    return names


def published_md(published: Any) -> list[str]:
    """Part 2: every published figure with its source."""
    keys = ["0.0", "0.1", "0.2", "0.3"]
    md = [f"## {PUBLISHED_HEADING}", "", published.note, ""]
    md += ["### RAF-DB test accuracy (%) under label noise", "",
           md_table(["model", "method", "clean", "10%", "20%", "30%", "metric", "source"],
                     [[e["model"], e["method"], *[_fmt(e["values"].get(k)) for k in keys], e["metric"],
                       f"[{e['source']}]"] for e in published.noisy]), ""]
    md += ["### Other datasets (clean labels)", "",
           md_table(["model", "dataset", "accuracy (%)", "source"],
                     [[e["model"], e["dataset"], _fmt(e["value"]), f"[{e['source']}]"] for e in published.other_datasets]),
           ""]
    body = []
    for e in published.sota:
        lat = f"{e['latency_ms']} ({e.get('latency_hardware', '?')})" if e.get("latency_ms") else "—"
        body.append([e["model"], e.get("backbone", "—"), _fmt(e["accuracy"]), _fmt(e.get("params_m"), 1),
                     _fmt(e.get("gflops"), 1), lat, f"[{e['source']}]" + (f" ({e['note']})" if e.get("note") else "")])
    md += ["### State of the art on clean RAF-DB", "",
           md_table(["model", "backbone", "accuracy (%)", "params (M)", "GFLOPs", "latency (ms/face, hardware)",
                      "source"], body), "",
           "### Sources", ""]
    used = sorted({e["source"] for g in (published.noisy, published.other_datasets, published.sota) for e in g})
    md += [f"- [{k}] {published.cite(k)}" for k in used] + [""]
    return md


def _fmt(v: Any, nd: int = 2) -> str:
    return "—" if v is None else f"{float(v):.{nd}f}"


def build_report(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                 published: Any = None) -> Path:
    """Write ``out/RESULTS.md`` (and copy the bench PNGs next to it); returns its path."""
    from eacfer.bench.published import load_published
    from eacfer.utils.atomic import write_text

    published = published or load_published()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    outputs = sorted(find_outputs(inputs), key=lambda b: b.kind != "noisy")  # noisy grid first, as in the paper
    md = ["# eacfer benchmark results", "",
          "Two separate parts. **Part 1** holds only figures measured by eacfer, each bench with the command, git "
          "commit, machine and date that produced it. **Part 2** holds only figures published by others, each with "
          "its source. No table column mixes the two; where a plot shows both, published points are gray/hollow and "
          "labelled \"published\".", "",
          f"## {MEASURED_HEADING}", ""]
    if not outputs:
        md += [f"No bench outputs found in {', '.join(map(str, inputs))} "
               "(run `eacfer bench noisy` or `eacfer bench efficiency` first).", ""]
    for i, b in enumerate(outputs, 1):
        prefix = f"{i}_" if len(outputs) > 1 else ""
        title = "Noisy-label grid" if b.kind == "noisy" else "Efficiency"
        md += [f"### {title} (`{b.path}`)", "", *_provenance_md(b.meta), ""]
        if b.kind == "noisy":
            md += _noisy_md(b)
        else:
            md += efficiency_table_md(read_efficiency_csv(b.path / EFFICIENCY_CSV))
            md += ["The efficiency plot's gray points and dotted lines are published figures (Part 2), "
                   "drawn for reference only.", ""]
        md += [f"![{name}]({name})" for name in _copy_pngs(b, out, prefix)] + [""]
    md += published_md(published)
    path = out / REPORT_NAME
    write_text(path, "\n".join(md))
    log.info("report: %s (%d measured bench output(s))", path, len(outputs))
    return path
