"""benchmarks/train_throughput.py runs end to end (tiny CPU sizes) and reports every figure."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"


def test_throughput_script_tiny_cpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script prepends its checkout's src/; undo after
    spec = importlib.util.spec_from_file_location("train_throughput", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "t.json"
    rc = mod.main(["--device", "cpu", "--backbone", "resnet18", "--image-size", "32", "--src-size", "40",
                   "--n-images", "24", "--batch-size", "8", "--ref-workers", "0", "--warmup", "1",
                   "--ref-steps", "1", "--bound-steps", "1", "--views", "split", "--json-out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    for k in ("reference_w0", "fast_split", "bound_split"):
        assert res["results"][k]["samples_per_s"] > 0, k
    assert res["results"]["fast_split"]["samples"] == 24  # one full epoch of the synthetic set
    assert res["fast_over_best_reference"] > 0 and res["fast_over_bound"] > 0
    text = capsys.readouterr().out
    assert "fast / best reference" in text and '"torch"' in text
