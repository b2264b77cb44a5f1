"""benchmarks/train_throughput.py runs end to end (tiny CPU sizes) and reports every figure."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"


@pytest.mark.parametrize("emulate", [False, True], ids=["cpu-settings", "emulated-cuda-settings"])
def test_throughput_script_tiny_cpu(tmp_path, capsys, monkeypatch, emulate):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script prepends its checkout's src/; undo after
    spec = importlib.util.spec_from_file_location("train_throughput", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "t.json"
    rc = mod.main(["--device", "cpu", "--backbone", "resnet18", "--image-size", "32", "--src-size", "40",
                   "--n-images", "24", "--batch-size", "8", "--ref-workers", "0", "--warmup", "1",
                   "--ref-steps", "1", "--bound-steps", "1", "--views", "split", "--json-out", str(out),
                   *(["--emulate-cuda-settings"] if emulate else [])])
    assert rc == 0
    res = json.loads(out.read_text())
    for k in ("reference_w0", "fast_split", "bound_split"):
        assert res["results"][k]["samples_per_s"] > 0, k
    assert res["results"]["fast_split"]["samples"] == 24  # one full epoch of the synthetic set
    assert res["fast_over_best_reference"] > 0 and res["fast_over_bound"] > 0
    expected = "bf16 autocast, fused Adam, channels_last, cudnn.benchmark" if emulate else "fp32"
    assert res["results"]["fast_split"]["settings"] == expected
    assert res["setup"]["emulate_cuda_settings"] is emulate
    text = capsys.readouterr().out
    assert "fast / best reference" in text and '"torch"' in text


def test_cuda_smoke_script_dry_run_on_cpu(tmp_path, capsys, monkeypatch):
    """benchmarks/cuda_smoke.py (the GPU check's correctness half) runs its stages on a CPU."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    path = BENCH.parent / "cuda_smoke.py"
    monkeypatch.syspath_prepend(str(BENCH.parent))  # it imports count_syncs from train_throughput.py
    spec = importlib.util.spec_from_file_location("cuda_smoke", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "s.json"
    rc = mod.main(["--device", "cpu", "--quick", "--stages", "equivalence,train_resume,syncs,nonsense",
                   "--json-out", str(out)])
    res = json.loads(out.read_text())
    st = res["stages"]
    assert st["equivalence"]["status"] == "ok" and st["equivalence"]["loss_rel_diff"] < 1e-6
    assert st["train_resume"]["status"] == "ok" and st["train_resume"]["resume_close"]
    assert st["syncs"]["sync_calls_per_epoch"] is None  # counted on CUDA only
    # an unknown (or broken) stage is reported, does not stop the others, and fails the exit status
    assert st["nonsense"]["status"] == "FAILED" and res["failed"] == ["nonsense"] and rc == 1
    assert "FAILED stages: nonsense" in capsys.readouterr().out
