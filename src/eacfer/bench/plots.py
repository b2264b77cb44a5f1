"""Benchmark plots (matplotlib, Agg backend, written atomically).

Measured values are drawn solid/filled, published ones dashed/hollow and labelled "published".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _figure(ncols: int = 1, width: float = 7.0, height: float = 4.5) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only; never open a window
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    import matplotlib.pyplot as plt

    from eacfer.utils.atomic import atomic_path

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def plot_noisy_curves(results: Sequence[Any], path: str | os.PathLike[str]) -> Path:
    """Test accuracy per epoch, one line per run (from each run's ``metrics.csv``).

    Example:
        >>> plot_noisy_curves(results, "bench/noisy_curves.png")  # doctest: +SKIP
    """
    fig, (ax,) = _figure()
    drawn = 0
    for r in results:
        if not r.history:
            continue
        xs = [row["epoch"] for row in r.history]
        ys = [100.0 * row["test_accuracy"] for row in r.history]
        ax.plot(xs, ys, marker="o" if len(xs) < 15 else None, ms=3, label=r.cell.name)
        drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "no finished epochs yet", ha="center", va="center", transform=ax.transAxes)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%), measured here")
    ax.set_title("Noisy-label grid: test accuracy per epoch")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_noisy_table(results: Sequence[Any], published: Any, path: str | os.PathLike[str]) -> Path:
    """Last-5 mean accuracy vs noise rate: one solid line per measured backbone × method, the matching
    published EAC-repository row dashed in the same colour.

    The legend and title describe only what is drawn: a measured row with no two neighbouring values is
    drawn (and listed) as dots, a gap in a row is left as a gap, "published" appears only when a published
    row is drawn, and the axis says over how many epochs the measured means really are.
    """
    import math

    from eacfer.bench.tables import averaged_epochs, columns_of, measured_table, published_row

    fig, (ax,) = _figure()
    rows, cols, values = measured_table(results, "last5_mean_accuracy")
    known = all(c.noise_rate is not None for c in cols)
    xs = [100.0 * c.noise_rate for c in cols] if known else list(range(len(cols)))
    styles: set[str] = set()
    for i, ((b, m), vals) in enumerate(zip(rows, values, strict=True)):
        color = f"C{i % 10}"
        ys = [math.nan if v is None else v for v in vals]  # NaN breaks the line: no value is invented
        joined = any(a is not None and c is not None for a, c in zip(vals, vals[1:], strict=False))
        if any(v is not None for v in vals):
            ax.plot(xs, ys, marker="o", color=color, ls="-" if joined else "none", label=f"{b} {m} (measured)")
            styles.add("solid: measured here" if joined else "dots: measured here")
        pr = published_row(published, b, m, columns_of([r.cell for r in results])) if known else None
        if pr is not None:
            ref, pv = pr
            if any(v is not None for v in pv):
                pjoined = any(a is not None and c is not None for a, c in zip(pv, pv[1:], strict=False))
                ax.plot(xs, [math.nan if v is None else v for v in pv], ls="--" if pjoined else "none",
                        marker="s", mfc="none", color=color, label=f"{ref['model']} (published, {ref['source']})")
                styles.add("dashed: published" if pjoined else "hollow squares: published")
    if known:
        ax.set_xlabel("training labels flipped (%)")
    else:
        ax.set_xticks(xs, [c.column for c in cols], rotation=15)
        ax.set_xlabel("label file")
    n = averaged_epochs(results)
    if not n or min(n) >= 5:
        ax.set_ylabel("last-5-epoch mean test accuracy (%)")
    else:
        span = f"{min(n)}" if min(n) == max(n) else f"{min(n)}-{max(n)}"
        ax.set_ylabel(f"measured: mean test accuracy of the last {span} epoch(s) (%)\n"
                      "(fewer than 5 ran; published: last-5 mean)", fontsize=8)
    order = ["solid: measured here", "dots: measured here", "dashed: published", "hollow squares: published"]
    kinds = ", ".join(k for k in order if k in styles)
    ax.set_title("Accuracy under label noise" + (f" ({kinds})" if kinds else ""))
    ax.grid(alpha=0.3)
    if styles:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no finished runs yet", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_accuracy_vs_cost(rows: Sequence[dict[str, Any]], published: Any, path: str | os.PathLike[str]) -> Path:
    """Two panels: accuracy vs per-face latency (measured models; a published latency only as a labelled,
    not-comparable point) and accuracy vs parameters (measured and published models)."""
    fig, (ax_lat, ax_par) = _figure(ncols=2, width=6.5, height=6.0)
    lat_drawn = 0
    lat_kinds: set[str] = set()
    for i, r in enumerate(rows):
        color = f"C{i % 10}"
        acc, own = _accuracy_of(r)
        if acc is None:
            continue
        synthetic = own and str(r.get("accuracy_data") or "").startswith("synthetic")
        style = {"color": color, "marker": "X" if synthetic else "o", "ms": 8, "mfc": color if own else "none"}
        # say on which data each measured accuracy is (a synthetic-data figure is no RAF-DB result)
        tag = (f" [{str(r.get('accuracy_data') or 'unknown data').split(',')[0]}]" if own
               else " (acc. published, RAF-DB)")
        lat = r.get("ort_cpu_b1_ms") or r.get("torch_cpu_b1_ms")
        if lat:
            lat_kinds.add("onnxruntime" if r.get("ort_cpu_b1_ms") else "torch eager")
            ax_lat.plot([lat], [acc], ls="none", **style)
            ax_lat.annotate(r["name"] + tag, (lat, acc), fontsize=7, xytext=(4, 4), textcoords="offset points")
            lat_drawn += 1
        ax_par.plot([r["params_m"]], [acc], ls="none", **style)
        ax_par.annotate(f"{r['name']}{tag}\n{r['params_m']:.2f} M, {r['gflops']:.2f} GFLOPs @ {r['image_size']}²",
                        (r["params_m"], acc), fontsize=7, xytext=(4, 4), textcoords="offset points")
    no_cost = []
    for e in published.sota:
        if e.get("latency_ms"):
            ax_lat.plot([e["latency_ms"]], [e["accuracy"]], ls="none", marker="D", mfc="none", color="gray")
            ax_lat.annotate(f"{e['model'].split(' (')[0]} (published;\nother hardware: not comparable)",
                            (e["latency_ms"], e["accuracy"]), fontsize=6, color="gray", xytext=(6, -4),
                            textcoords="offset points", ha="left", va="top")
        if e.get("params_m"):
            gf = f", {e['gflops']} GFLOPs" if e.get("gflops") else ""
            ax_par.plot([e["params_m"]], [e["accuracy"]], ls="none", marker="D", mfc="none", color="gray",
                        label=f"{e['model']} {e['accuracy']:.2f} ({e['params_m']} M{gf})")
        elif not e.get("latency_ms"):
            no_cost.append(e)
    # published models are named in a legend below the panel, not beside their marks: labels there overlapped
    # each other (POSTER 92.05 and APViT 91.98 lie 0.07 points apart) and the measured models' labels
    import matplotlib.pyplot as plt

    shades = plt.get_cmap("tab20b")
    for k, e in enumerate(no_cost):  # accuracy known, cost unknown: a horizontal reference line each
        ax_par.axhline(e["accuracy"], color=shades(k % 20), lw=0.9, ls=":", label=f"{e['model']} {e['accuracy']:.2f}")
    handles, _ = ax_par.get_legend_handles_labels()
    if handles:
        ax_par.legend(handles=handles, title="published (RAF-DB test accuracy; dotted: cost unknown)",
                      title_fontsize=7, fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      frameon=False)
    if not lat_drawn:
        ax_lat.text(0.5, 0.5, "no measured model with an accuracy\n(give --checkpoints with metrics)",
                    ha="center", va="center", transform=ax_lat.transAxes, fontsize=8)
    ax_lat.set_xlabel(f"per-face latency, batch 1, CPU {' / '.join(sorted(lat_kinds)) or ''} (ms), measured here")
    ax_lat.set_ylabel("test accuracy (%)")
    ax_lat.set_title("Accuracy vs latency (measured: on the data in [ ]; published: RAF-DB)\n"
                     "filled: accuracy from the checkpoint, × on synthetic data; hollow: published", fontsize=9)
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax_par.set_xscale("log")
    ax_par.set_xlim(left=0.5, right=max([100.0] + [float(r["params_m"]) * 2 for r in rows]))
    ax_par.xaxis.set_major_locator(FixedLocator([0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]))
    ax_par.xaxis.set_major_formatter(ScalarFormatter())
    ax_par.xaxis.set_minor_formatter(NullFormatter())
    ax_par.set_xlabel("parameters (M), log scale")
    ax_par.set_title("Accuracy vs parameters\n(gray ◇ and dotted lines: published models, named below)", fontsize=9)
    for ax in (ax_lat, ax_par):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _accuracy_of(row: dict[str, Any]) -> tuple[float | None, bool]:
    """(accuracy %, measured?) of an efficiency row: the checkpoint's own metric, else the published one."""
    if row.get("accuracy") is not None:
        return float(row["accuracy"]), True
    if row.get("published_accuracy") is not None:
        return float(row["published_accuracy"]), False
    return None, False
