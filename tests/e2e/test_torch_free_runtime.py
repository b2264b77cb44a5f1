"""Inference never imports torch with an ONNX model (issue #25): ``eacfer predict``, ``eacfer video``, the
Python API and the app's model session run in a process where ``import torch`` fails, and torch is not in
``sys.modules`` when they finish. A ``.pt`` model whose ONNX export is already cached needs no torch either.

The child process installs an import hook that makes ``torch``/``torchvision`` unimportable (what a
runtime-only install looks like), runs the command, and prints which of them ended up in ``sys.modules``.
The models and the clip are made here, in the test process, which has torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inference_testutils import FACE, make_clip
from no_torch import BLOCK_TORCH

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, face_rgb, exported_onnx, inference_cache

_REPORT = textwrap.dedent("""
    import json, sys
    print("LOADED=" + json.dumps(sorted(m for m in ("torch", "torchvision") if sys.modules.get(m) is not None)))
""")


def _run_without_torch(body: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``body`` in a fresh interpreter that cannot import torch; it reports the torch modules loaded."""
    script = tmp_path / "child.py"
    script.write_text(BLOCK_TORCH + "\ntry:\n" + textwrap.indent(body, "    ") + "\nfinally:\n"
                      + textwrap.indent(_REPORT, "    "))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=tmp_path)


def _cli(argv: list[str]) -> str:
    """Child body: ``python -m eacfer ARGV``; the exit status is printed as ``RC=n``."""
    return textwrap.dedent(f"""
        import sys
        from eacfer.commands.cli import main
        sys.argv = ["eacfer", *{argv!r}]
        rc = main({argv!r})
        print("RC=" + str(rc))
    """)


def _loaded(proc: subprocess.CompletedProcess) -> list[str]:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("LOADED=")]
    assert lines, f"the child did not report (it crashed?)\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(lines[-1].removeprefix("LOADED="))


def test_the_block_works(tmp_path):
    """The hook really makes torch unimportable (else the tests below would prove nothing)."""
    proc = _run_without_torch("import torch\n", tmp_path)
    assert proc.returncode != 0 and "blocked by the test" in proc.stderr
    assert _loaded(proc) == []


def test_predict_onnx_without_torch(exported_onnx, tmp_path):
    out = tmp_path / "out"
    proc = _run_without_torch(_cli(["predict", str(FACE), "--checkpoint", str(exported_onnx), "--out", str(out)]),
                              tmp_path)
    assert "RC=0" in proc.stdout, proc.stderr
    assert _loaded(proc) == []
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) >= 2 and "astronaut.jpg" in rows[1]  # the portrait's face was found and classified


def test_video_onnx_without_torch(exported_onnx, face_rgb, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", face_rgb, frames=8, size=(320, 240))
    out = tmp_path / "out"
    proc = _run_without_torch(_cli(["video", str(clip), "--checkpoint", str(exported_onnx), "--out", str(out)]),
                              tmp_path)
    assert "RC=0" in proc.stdout, proc.stderr
    assert _loaded(proc) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 8
    assert (out / "annotated.mp4").stat().st_size > 0


def test_predict_with_the_default_model_without_torch(tmp_path):
    """No --checkpoint: the bundled starter model runs from its ONNX export, so a runtime-only install labels
    faces out of the box (the .pt would need torch for its first export)."""
    out = tmp_path / "out"
    proc = _run_without_torch(_cli(["predict", str(FACE), "--out", str(out)]), tmp_path,
                              env={"EACFER_CACHE_DIR": str(tmp_path / "cache")})
    assert "RC=0" in proc.stdout, proc.stderr
    assert _loaded(proc) == []
    assert "starter model" in proc.stdout + proc.stderr
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) >= 2 and "Happiness" in rows[1]  # Eileen Collins smiles (tests/infer/runtime/test_starter.py)


def test_python_api_and_app_session_onnx_without_torch(exported_onnx, tmp_path):
    body = textwrap.dedent(f"""
        from eacfer.infer.predictor import Predictor
        with Predictor.from_checkpoint({str(exported_onnx)!r}, cam=True) as p:
            r = p.predict({str(FACE)!r})
            assert len(r.faces) == 1 and r.faces[0].cam is not None, r.faces
            assert abs(float(r.faces[0].probabilities.sum()) - 1.0) < 1e-4
        from eacfer.ui.session import ModelSession  # what `eacfer ui --checkpoint m.onnx` loads the model with
        s = ModelSession.load({str(exported_onnx)!r})
        assert s.summary.backend == "onnxruntime", s.summary
        s.predictor.close()
        print("API_OK")
    """)
    proc = _run_without_torch(body, tmp_path)
    assert "API_OK" in proc.stdout, proc.stderr
    assert _loaded(proc) == []


def test_pt_model_needs_torch_only_on_a_cache_miss(model_pt, inference_cache, tmp_path):
    """A ``.pt`` whose ONNX export is cached (keyed by its content) runs without torch; an uncached one
    says in one line that it needs torch."""
    from eacfer.infer.runtime.backends import load_classifier

    load_classifier(model_pt, device="cpu")  # fills the cache (this process has torch)
    body = textwrap.dedent(f"""
        from eacfer.infer.predictor import Predictor
        with Predictor.from_checkpoint({str(model_pt)!r}, device="auto", detector="none") as p:
            assert p.backend == "onnxruntime"
            assert len(p.predict({str(FACE)!r}).faces) == 1
        # as on a GPU machine without torch: `auto` cannot ask torch about CUDA, so the export runs on the CPU
        import eacfer.infer.runtime.backends as backends
        backends._may_have_cuda = lambda: True
        with Predictor.from_checkpoint({str(model_pt)!r}, device="auto", detector="none") as p:
            assert p.backend == "onnxruntime" and p.classifier.device == "cpu"
        print("PT_OK")
    """)
    env = {"EACFER_CACHE_DIR": str(inference_cache)}
    proc = _run_without_torch(body, tmp_path, env)
    assert "PT_OK" in proc.stdout, proc.stderr
    assert _loaded(proc) == []

    empty = tmp_path / "empty_cache"
    proc = _run_without_torch(_cli(["predict", str(FACE), "--checkpoint", str(model_pt), "--out",
                                    str(tmp_path / "o")]), tmp_path, {"EACFER_CACHE_DIR": str(empty)})
    assert "RC=2" in proc.stdout, proc.stderr
    assert "needs torch" in proc.stderr and "Traceback" not in proc.stderr
    assert _loaded(proc) == []


@pytest.mark.parametrize("module", ["eacfer.infer.predictor", "eacfer.infer.jobs.video", "eacfer.infer.jobs.photos",
                                    "eacfer.modelinfo", "eacfer.infer.runtime.backends"])
def test_runtime_modules_import_without_torch(module, tmp_path):
    proc = _run_without_torch(f"import {module}\nprint('IMPORTED')\n", tmp_path)
    assert "IMPORTED" in proc.stdout, proc.stderr
    assert _loaded(proc) == []


def test_serve_with_the_default_model_without_torch(tmp_path):
    """`eacfer serve` given no model (the bundled starter, run from its ONNX export) answers predictions with
    attention maps where torch is not installed: the HTTP API is part of the lean runtime too."""
    body = textwrap.dedent(f"""
        from fastapi.testclient import TestClient
        from eacfer.infer.runtime.starter import resolve_model
        from eacfer.serve.app import create_app
        from eacfer.serve.limits import ServeConfig
        from eacfer.serve.server import open_pool

        cfg = ServeConfig(checkpoint=str(resolve_model(None)[0]))
        pool = open_pool(cfg)
        try:
            with TestClient(create_app(cfg, pool)) as c:
                r = c.post("/v1/predict?cam=true", content=open({str(FACE)!r}, "rb").read())
                face = r.json()["faces"][0]
                print("SERVED=" + str(r.status_code) + " " + face["emotion"] + " " + str("cam_png" in face))
        finally:
            pool.close()
    """)
    proc = _run_without_torch(body, tmp_path, env={"EACFER_CACHE_DIR": str(tmp_path / "cache")})
    assert "SERVED=200 Happiness True" in proc.stdout, proc.stderr[-3000:]
    assert _loaded(proc) == []
