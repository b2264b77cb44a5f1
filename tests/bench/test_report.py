"""``eacfer bench report`` and the shipped published-numbers table."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bench.test_noisy import _fake_summary  # tests/ is on sys.path (rootdir-relative imports)
from eacfer.bench.efficiency_tables import COLUMNS, write_efficiency_outputs
from eacfer.bench.noisy import plan_grid, read_run, write_noisy_outputs
from eacfer.bench.provenance import META_NAME
from eacfer.bench.published import load_published, validate
from eacfer.bench.report import MEASURED_HEADING, PUBLISHED_HEADING, build_report
from eacfer.commands.cli import main

META = {"kind": "x", "command": "eacfer bench noisy --data D --out O", "commit": "abc123def456",
        "machine": {"cpu": "Test CPU 9000", "cores": 2, "torch": "2.x", "onnxruntime": "1.x"},
        "date": "2026-01-02 03:04 UTC"}


def _published_values(pub) -> list[float]:  # noqa: ANN001
    vals = []
    for e in pub.noisy:
        vals += list(e["values"].values())
    vals += [e["value"] for e in pub.other_datasets]
    for e in pub.sota:
        vals += [e[k] for k in ("accuracy", "params_m", "gflops", "latency_ms") if e.get(k) is not None]
    return vals


def test_published_table_has_the_issue_numbers_each_with_a_source() -> None:
    pub = load_published()
    for e in [*pub.noisy, *pub.other_datasets, *pub.sota]:
        src = pub.sources[e["source"]]
        assert src["title"] and (src.get("url") or (src.get("venue") and src.get("year")))
    rows = {e["model"]: e["values"] for e in pub.noisy}
    assert rows["ResNet-50 + EAC"] == {"0.0": 90.35, "0.1": 88.62, "0.2": 87.35, "0.3": 85.27}
    assert rows["ResNet-50 CE"] == {"0.0": 88.75, "0.1": 83.44, "0.2": 79.11, "0.3": 71.67}
    assert rows["MobileNet + EAC"] == {"0.0": 86.47, "0.1": 82.63, "0.2": 81.65, "0.3": 79.82}
    assert rows["MobileNet CE"] == {"0.0": 83.31, "0.1": 77.80, "0.2": 70.60, "0.3": 62.48}
    assert rows["ResNet-18 + EAC"] == {"0.0": 89.99, "0.1": 88.02, "0.2": 86.05, "0.3": 84.42}
    assert rows["ResNet-18 baseline (CE)"] == {"0.1": 81.01, "0.2": 77.98, "0.3": 75.50}
    assert rows["ResNet-18 SCN"] == {"0.1": 82.18, "0.2": 80.10, "0.3": 77.46}
    assert rows["ResNet-18 RUL"] == {"0.1": 86.17, "0.2": 84.32, "0.3": 82.06}
    assert sorted(e["value"] for e in pub.other_datasets) == [65.32, 89.64]
    sota = {e["model"].split(" (")[0]: e for e in pub.sota}
    assert {k: v["accuracy"] for k, v in sota.items()} == {
        "FMAE": 93.09, "POSTER++": 92.21, "POSTER": 92.05, "APViT": 91.98, "LA-Net": 91.56, "DDAMFN": 91.35,
        "TransFER": 90.91, "ARM": 90.42, "DAN": 89.70, "RUL": 88.98, "EfficientFace": 88.36, "SCN": 87.03,
        "MobileFaceNet": 88.27}
    assert (sota["POSTER++"]["params_m"], sota["POSTER++"]["gflops"]) == (43.7, 8.4)
    assert sota["MobileFaceNet"]["latency_ms"] == 3.16 and "12700K" in sota["MobileFaceNet"]["latency_hardware"]
    assert pub.noisy_reference("resnet50_msceleb", "ce")["model"] == "ResNet-50 CE"


def test_published_validation_refuses_an_uncited_number() -> None:
    raw = json.loads((Path(__file__).parents[2] / "src/eacfer/bench/published.json").read_text(encoding="utf-8"))
    bad = copy.deepcopy(raw)
    bad["sota"][0]["source"] = "nowhere"
    with pytest.raises(ValueError, match="unknown source 'nowhere'"):
        validate(bad, "x.json")
    bad = copy.deepcopy(raw)
    del bad["sota"][1]["source"]
    with pytest.raises(ValueError, match="cites unknown source"):
        validate(bad, "x.json")
    bad = copy.deepcopy(raw)
    bad["sources"]["eac_repo"] = {"title": "t"}
    with pytest.raises(ValueError, match="eac_repo"):
        validate(bad, "x.json")


def _bench_outputs(root: Path) -> tuple[Path, Path, dict[str, float]]:
    """A noisy output (hand-made runs) and an efficiency output (hand-made row), each with provenance."""
    pub = load_published()
    noisy = root / "noisy"
    cells = plan_grid(["mobilenet_v2"], ["eac", "ce"], noise_rates=[0.0, 0.3])
    accs, results = {}, []
    for i, c in enumerate(cells):
        accs[c.name] = 0.4123 + 0.01 * i
        _fake_summary(noisy / "runs" / c.name, 2, finished=True, acc=accs[c.name])
        results.append(read_run(c, noisy / "runs" / c.name, 2))
    (noisy / META_NAME).write_text(json.dumps(META))
    write_noisy_outputs(noisy, results, pub, meta=META)
    eff = root / "eff"
    row = dict.fromkeys(COLUMNS)
    row.update(name="mobilenet_v2", backbone="mobilenet_v2", model_source="backbone (random weights)", image_size=224,
               params_m=2.232839, gflops=0.599, pt_mb=9.1, onnx_mb=8.9, torch_cpu_b1_ms=12.5,
               torch_cpu_batch_ms_per_face=6.25, ort_cpu_b1_ms=4.75, ort_cpu_batch_ms_per_face=3.5,
               throughput_batch=16, threads=2, video_fps=31.5, video_fps_kind="end-to-end: test",
               published_accuracy=86.47, published_source="MobileNet + EAC [eac_repo]")
    effmeta = {**META, "command": "eacfer bench efficiency --out O"}
    write_efficiency_outputs(eff, [row], pub, meta=effmeta)
    (eff / META_NAME).write_text(json.dumps(effmeta))
    return noisy, eff, accs


def test_report_separates_measured_and_published(tmp_path: Path) -> None:
    noisy, eff, accs = _bench_outputs(tmp_path / "bench")
    out = tmp_path / "report"
    assert main(["-q", "bench", "report", "--inputs", str(tmp_path / "bench"), "--out", str(out)]) == 0
    text = (out / "RESULTS.md").read_text(encoding="utf-8")
    assert text.index(f"## {MEASURED_HEADING}") < text.index(f"## {PUBLISHED_HEADING}")
    measured, published = text.split(f"## {PUBLISHED_HEADING}")
    # every measured figure carries its provenance
    assert measured.count("- command: `eacfer bench") == 2 and "eacfer bench efficiency --out O" in measured
    assert measured.count("abc123def456") == 2 and measured.count("Test CPU 9000, 2 cores") == 2
    assert measured.count("2026-01-02 03:04 UTC") == 2
    # measured values are in part 1 (from the runs' summaries) ...
    assert f"{100 * accs['mobilenet_v2_eac_clean']:.2f}" in measured
    assert f"{100 * (accs['mobilenet_v2_ce_noise30'] - 0.1):.2f}" in measured
    assert "12.50" in measured and "31.5" in measured and "0.60" in measured
    # ... and no published number leaks into part 1, nor a measured one into part 2
    pub = load_published()
    body = measured.split("## " + MEASURED_HEADING)[1]
    for v in _published_values(pub):
        assert f"{v:.2f}" not in body, v
    assert f"{100 * accs['mobilenet_v2_eac_clean']:.2f}" not in published
    for v in _published_values(pub):
        assert f"{v:.2f}" in published or f"{v:.1f}" in published or str(v) in published, v
    for key in pub.sources:
        assert pub.sources[key]["title"] in published
    for png in ("1_noisy_curves.png", "1_noisy_table.png", "2_accuracy_vs_latency.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in text


def test_report_without_outputs_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    path = build_report([tmp_path / "empty"], tmp_path / "r")
    text = path.read_text(encoding="utf-8")
    assert "No bench outputs found" in text and f"## {PUBLISHED_HEADING}" in text
    assert main(["bench", "report", "--inputs", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "missing" in capsys.readouterr().err


def test_a_cuda_row_reads_back_from_the_csv(tmp_path):
    """A GPU run's row names its autocast dtype (text, not a number): written and read back, the table shows it."""
    from eacfer.bench.efficiency_tables import coerce_row, efficiency_table_md, read_efficiency_csv

    row = dict.fromkeys(COLUMNS)
    row.update(name="m", backbone="mobilenet_v2", image_size=224, params_m=2.2, gflops=0.6, pt_mb=9.0,
               torch_cpu_b1_ms=5.0, torch_cpu_batch_ms_per_face=2.0, throughput_batch=8, threads=2,
               cuda_amp_dtype="float16", cuda_amp_b1_ms=1.5, cuda_amp_batch_ms_per_face=0.25)
    from types import SimpleNamespace

    published = SimpleNamespace(noisy_reference=lambda *a: None, sota=[], cite=lambda k: k)
    write_efficiency_outputs(tmp_path, [row], published, plot=False)
    back = coerce_row(read_efficiency_csv(tmp_path / "efficiency.csv")[0])
    assert back["cuda_amp_dtype"] == "float16" and back["cuda_amp_b1_ms"] == 1.5 and back["image_size"] == 224
    table = "\n".join(efficiency_table_md([back]))
    assert "CUDA autocast" in table and "| float16 |" in table
