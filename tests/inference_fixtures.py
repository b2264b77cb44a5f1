"""Session fixtures of the inference tests (enable with ``pytest_plugins = ["inference_fixtures"]``).

Exports and detector start-up are the slow parts on 2 cores, so they happen once per session here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from inference_testutils import FACE, save_random_model


@pytest.fixture(scope="session")
def inference_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point the on-the-fly ONNX export cache at a temporary folder for the whole session."""
    old = os.environ.get("EACFER_CACHE_DIR")
    d = tmp_path_factory.mktemp("eacfer_cache")
    os.environ["EACFER_CACHE_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("EACFER_CACHE_DIR", None)
    else:
        os.environ["EACFER_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def model_pt(tmp_path_factory: pytest.TempPathFactory, inference_cache: Path) -> Path:
    """A random-weight MobileNetV2 model file (64 px input)."""
    return save_random_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="session")
def predictor(model_pt: Path):
    """A shared CPU predictor (onnxruntime, MediaPipe) with CAMs; tests must not change its settings."""
    from eacfer.infer.predictor import Predictor

    p = Predictor.from_checkpoint(model_pt, device="cpu", cam=True)
    yield p
    p.close()


@pytest.fixture(scope="session")
def face_rgb() -> np.ndarray:
    from eacfer.data.imageio import load_image

    return load_image(FACE)


@pytest.fixture(scope="session")
def exported_onnx(model_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model_pt`` exported with a dynamic batch and CAMs (via ``export_onnx``)."""
    import json

    from eacfer.export import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "model_cams.onnx"
    result = export_onnx(model_pt, out, dynamic_batch=True, with_cams=True)
    out.with_suffix(".json").write_text(json.dumps(result))  # export_onnx's report, for test_export
    return out


@pytest.fixture(scope="session")
def exported_onnx_b1(model_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model_pt`` exported with the defaults of ``eacfer export`` (batch 1, logits only)."""
    from eacfer.export import export_onnx

    out = tmp_path_factory.mktemp("onnx_b1") / "model_b1.onnx"
    export_onnx(model_pt, out)
    return out
