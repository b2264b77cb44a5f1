"""benchmarks/gpu_probe.py (issue #24's CUDA probe) in its CPU dry mode: every stage runs and reports ok, so the
one GPU run a later session gets is not spent on a broken script."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_probe.py"


@pytest.mark.slow
def test_gpu_probe_dry_run_on_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_probe", PROBE)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    out = tmp_path / "probe.json"
    rc = probe.main(["--device", "cpu", "--quick", "--json-out", str(out)])
    report = json.loads(out.read_text())
    assert set(report["stages"]) == {"cross_dataset", "resume_convert", "precision", "cams_fp32", "tf32"}
    failed = {k: v.get("error") for k, v in report["stages"].items() if not v["ok"]}
    assert rc == 0 and not failed, failed
    st = report["stages"]
    assert st["cross_dataset"]["excluded"] == ["Contempt"]
    assert st["resume_convert"]["to_paper"]["fused_before"] is True
    assert not st["resume_convert"]["to_paper"]["fused_after"]
    assert st["cams_fp32"]["features_dtype"] == "torch.bfloat16" and st["cams_fp32"]["cams_dtype"] == "torch.float32"
    assert st["tf32"]["paper_steps_without_tf32"] > 0 and st["tf32"]["tf32_training"] is False
    assert report["device"] == "cpu" and report["capability"] is None
