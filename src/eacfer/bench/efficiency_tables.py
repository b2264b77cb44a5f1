"""The efficiency benchmark's files: ``efficiency.csv`` (one row per model, :data:`COLUMNS`), ``efficiency.md``
(the measured table beside the published figures) and the accuracy-vs-latency plot; and reading them back for
``eacfer bench report``. The measuring itself is :mod:`eacfer.bench.efficiency`.

Example:
    >>> coerce_row({"name": "m", "image_size": "64", "params_m": "2.23"})["image_size"]
    64
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EFFICIENCY_MD = "efficiency.md"
EFFICIENCY_CSV = "efficiency.csv"
PLOT_PNG = "accuracy_vs_latency.png"

#: CSV columns, in order (units in the names).
COLUMNS = (
    "name", "backbone", "model_source", "image_size", "params_m", "gflops", "pt_mb", "onnx_mb",
    "torch_cpu_b1_ms", "torch_cpu_b1_min_ms", "torch_cpu_batch_ms_per_face", "ort_cpu_b1_ms", "ort_cpu_b1_min_ms",
    "ort_cpu_batch_ms_per_face",
    "cuda_amp_dtype", "cuda_amp_b1_ms", "cuda_amp_batch_ms_per_face", "throughput_batch", "threads",
    "video_fps", "video_fps_kind", "video_frames_with_face",
    "accuracy", "accuracy_metric", "accuracy_data", "published_accuracy", "published_source", "notes",
)


def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def write_efficiency_outputs(out: str | os.PathLike[str], rows: Sequence[dict[str, Any]], published: Any,
                             meta: dict[str, Any] | None = None, plot: bool = True) -> dict[str, Path]:
    """Write ``efficiency.csv``, ``efficiency.md`` and ``accuracy_vs_latency.png`` into ``out``."""
    import csv
    import io

    from eacfer.bench.provenance import describe_machine
    from eacfer.utils.atomic import write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in COLUMNS})
    write_text(out / EFFICIENCY_CSV, buf.getvalue())

    md = ["# Efficiency benchmark", ""]
    if meta:
        md += [f"- **Measured here** with `{meta.get('command', '?')}`",
               f"- commit `{meta.get('commit', '?')}`, {meta.get('date', '?')}",
               f"- machine: {describe_machine(meta.get('machine', {}))}", ""]
    md += ["## Measured here", "", *efficiency_table_md(rows)]
    md += _published_cost_md(published, rows)
    write_text(out / EFFICIENCY_MD, "\n".join(md))
    files = {"csv": out / EFFICIENCY_CSV, "md": out / EFFICIENCY_MD}
    if plot:
        from eacfer.bench.plots import plot_accuracy_vs_cost

        files["png"] = plot_accuracy_vs_cost(rows, published, out / PLOT_PNG)
    return files


NUMERIC = {"image_size", "params_m", "gflops", "pt_mb", "onnx_mb", "torch_cpu_b1_ms", "torch_cpu_b1_min_ms",
           "ort_cpu_b1_min_ms", "torch_cpu_batch_ms_per_face",
           "ort_cpu_b1_ms", "ort_cpu_batch_ms_per_face", "cuda_amp_b1_ms", "cuda_amp_batch_ms_per_face",
           "throughput_batch", "threads", "video_fps", "video_frames_with_face", "accuracy", "published_accuracy"}


def coerce_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back from ``efficiency.csv`` (strings) with numbers as numbers and blanks as None."""
    out: dict[str, Any] = {}
    for k in COLUMNS:
        v = row.get(k)
        if v is None or v == "":
            out[k] = None
        elif k in NUMERIC and isinstance(v, str):
            f = float(v)
            out[k] = int(f) if k in ("image_size", "throughput_batch", "threads", "video_frames_with_face") else f
        else:
            out[k] = v
    return out


def _with_min(median: Any, fastest: Any) -> str:
    return _f(median) + (f" ({_f(fastest)})" if fastest is not None else "")


def efficiency_table_md(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The measured-efficiency table (markdown lines) with its footnotes; rows from :func:`measure_model` or the CSV."""
    from eacfer.bench.tables import md_table

    rows = [coerce_row(r) for r in rows]
    batch = rows[0]["throughput_batch"] if rows else "N"
    threads = sorted({r["threads"] for r in rows if r.get("threads")})
    md = ["FLOPs = 2·MAC of convolutions and matrix products for one face (torch FlopCounterMode). Latency: median "
          f"per face after warm-up, batch 1 and batch {batch}, {'/'.join(map(str, threads)) or '?'} CPU thread(s); "
          "at batch 1 the fastest repetition follows in brackets (on a busy machine it is the better estimate of "
          "the undisturbed cost). `—` = not measured in this run.", ""]
    head = ["model", "input", "params (M)", "GFLOPs", ".pt (MB)", ".onnx (MB)", "torch CPU b1 (ms) median (min)",
            f"torch CPU b{batch} (ms/face)", "ORT CPU b1 (ms) median (min)", f"ORT CPU b{batch} (ms/face)"]
    cuda = any(r.get("cuda_amp_b1_ms") is not None for r in rows)
    if cuda:
        head += ["CUDA autocast", "CUDA b1 (ms)", f"CUDA b{batch} (ms/face)"]
    head += ["video FPS", "accuracy (%, from checkpoint)"]
    body = []
    for r in rows:
        line = [r["name"], f"{r['image_size']}²", _f(r["params_m"]), _f(r["gflops"]), _f(r["pt_mb"], 1),
                _f(r["onnx_mb"], 1), _with_min(r["torch_cpu_b1_ms"], r.get("torch_cpu_b1_min_ms")),
                _f(r["torch_cpu_batch_ms_per_face"]), _with_min(r["ort_cpu_b1_ms"], r.get("ort_cpu_b1_min_ms")),
                _f(r["ort_cpu_batch_ms_per_face"])]
        if cuda:
            line += [str(r.get("cuda_amp_dtype") or ""), _f(r["cuda_amp_b1_ms"], 3),
                     _f(r["cuda_amp_batch_ms_per_face"], 3)]
        fps = _f(r["video_fps"], 1)
        if r.get("video_fps_kind") and not str(r["video_fps_kind"]).startswith("end-to-end"):
            fps += " (classify only)"
        line += [fps, "—" if r.get("accuracy") is None
                 else f"{r['accuracy']:.2f} ({r['accuracy_metric']}; {r.get('accuracy_data') or 'unknown data'})"]
        body.append(line)
    md += [md_table(head, body), ""]
    kinds = sorted({str(r["video_fps_kind"]) for r in rows if r.get("video_fps_kind")})
    md += [f"- video FPS: {k}" for k in kinds]
    faces = [f"{r['name']}: {r['video_frames_with_face']}" for r in rows if r.get("video_frames_with_face") is not None]
    if faces:
        md.append(f"- frames with a detected face (sanity check of the video run, first frame is warm-up): {', '.join(faces)}")
    md += [f"- {r['name']}: {r['notes']}" for r in rows if r.get("notes")]
    md += [f"- {r['name']}: weights from `{r['model_source']}`" for r in rows if r.get("model_source")
           and not str(r["model_source"]).startswith("backbone")]
    return md + [""]


def _published_cost_md(published: Any, rows: Sequence[dict[str, Any]]) -> list[str]:
    from eacfer.bench.tables import md_table

    body = []
    seen = set()
    for r in rows:
        ref = published.noisy_reference(r["backbone"], "eac")
        if ref is not None and "0.0" in ref["values"] and ref["model"] not in seen:
            seen.add(ref["model"])
            body.append([f"{ref['model']} (clean labels, last-5 mean; cost of this architecture measured above "
                         f"as {r['backbone']})", _f(ref["values"]["0.0"]), "—", "—", "—", f"[{ref['source']}]"])
    for e in published.sota:
        lat = f"{e['latency_ms']} ({e.get('latency_hardware', '?')})" if e.get("latency_ms") else "—"
        body.append([e["model"] + (f" ({e['backbone']})" if e.get("backbone") and e["backbone"] not in e["model"] else ""), _f(e["accuracy"]),
                     _f(e.get("params_m"), 1), _f(e.get("gflops"), 1), lat, f"[{e['source']}]"])
    refs = sorted({e["source"] for e in published.sota} | {"eac_repo"})
    return ["## Published (not measured here): RAF-DB accuracy and reported cost", "",
            "Accuracies and costs as reported by their authors. Published latencies were measured on other "
            "hardware and are not comparable with the latencies above.", "",
            md_table(["model", "accuracy (%)", "params (M)", "GFLOPs", "latency (ms/face)", "source"], body), "",
            *[f"- [{k}] {published.cite(k)}" for k in refs], ""]


def read_efficiency_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Read ``efficiency.csv`` back."""
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))
