"""#14: ``notebooks/train_eac.ipynb`` runs end to end (papermill, CPU, tiny generated data) and is committed clean."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "train_eac.ipynb"


def test_committed_notebook_is_stripped_and_parameterised() -> None:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs not stripped"
    first = code[0]
    assert "parameters" in first["metadata"].get("tags", []), "papermill needs a 'parameters' cell first"
    src = "".join(first["source"])
    for name in ("DATA", "BACKBONE", "EPOCHS", "IMAGE_SIZE", "WANDB"):
        assert f"\n{name} = " in "\n" + src, name
    text = "".join("".join(c["source"]) for c in nb["cells"])
    for step in ("/kaggle/input", "resnet50_ft_weight.pkl", "recipe=RECIPE", "confusion.png", "cam_grid",
                 "export_onnx", "colab_files.upload", "device_plan(DEVICE, RECIPE)"):
        assert step in text, step


@pytest.mark.slow
def test_notebook_runs_end_to_end_on_generated_data(synth_rafdb: Path, tmp_path: Path, monkeypatch) -> None:
    papermill = pytest.importorskip("papermill", reason="papermill is in the dev extra")
    pytest.importorskip("ipykernel", reason="ipykernel is in the dev extra")
    wandb_on = __import__("importlib").util.find_spec("wandb") is not None
    # a kernel spec running this very interpreter (the venv's python), found through JUPYTER_PATH only
    kdir = tmp_path / "jupyter" / "kernels" / "eacfer-test"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "eacfer test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    (tmp_path / "wandb-dir").mkdir()
    out = tmp_path / "run"
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(executed), kernel_name="eacfer-test", cwd=str(tmp_path), progress_bar=False,
        parameters=dict(DATA=str(synth_rafdb), BACKBONE="resnet18", PRETRAINED="none", EPOCHS=2, IMAGE_SIZE=32,
                        BATCH_SIZE=16, RECIPE="paper", WANDB=wandb_on, WANDB_MODE="offline", OUT=str(out),
                        INSTALL=False, DEVICE="cpu", WORKERS=0),
        execution_timeout=600,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["epochs"] == 2 and summary["recipe"] == "paper"
    assert (out / "eval" / "confusion.png").stat().st_size > 0
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["final_accuracy"])  # eval of model.pt = the run's figure
    assert (out / "model.onnx").stat().st_size > 0
    nb = json.loads(executed.read_text())
    outputs = "".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                      for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "accuracy" in outputs and "model.onnx written" in outputs
    assert "recipe paper: cpu: reference pipeline, fp32" in outputs  # it says what it chose (#24)
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code"
                 for o in c.get("outputs", []))
    assert images >= 4  # curves, confusion matrix, CAM grid, the annotated photo
    if wandb_on:
        assert list((tmp_path / "wandb-dir").rglob("run-*.wandb")), "W&B offline run not written"
