"""The README's Python code blocks run as written (#19), in a fresh interpreter, without a traceback —
neither during the run nor at exit (no ``Exception ignored in ... __del__``). Tiny stand-ins sit at the
paths the snippets name: a random-weight resnet50_ft_weight.pkl, a small model file at
runs/r50_eac/model.pt, a photo of a face (group.jpg) and a short clip (clip.mp4)."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def test_readme_has_python_blocks():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks and any("Predictor.from_checkpoint" in b for b in blocks)
    api = next(b for b in blocks if "Predictor.from_checkpoint" in b)
    assert "with eacfer.Predictor.from_checkpoint(" in api  # resources released deterministically


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> Path:
    import cv2
    import torch

    from eacfer.models.resnet_caffe import CaffeResNet50
    from inference_testutils import FACE, save_random_model

    work = tmp_path_factory.mktemp("readme")
    torch.manual_seed(0)
    state = {k: v.numpy().astype(np.float16) for k, v in CaffeResNet50().state_dict().items()
             if not k.endswith("num_batches_tracked")}  # like the real pickle (numpy arrays), half the bytes
    with open(work / "resnet50_ft_weight.pkl", "wb") as fh:
        pickle.dump(state, fh, protocol=4)
    save_random_model(work / "runs" / "r50_eac" / "model.pt")
    face = cv2.imread(str(FACE))
    cv2.imwrite(str(work / "group.jpg"), face)
    writer = cv2.VideoWriter(str(work / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10,
                             (face.shape[1] // 2, face.shape[0] // 2))
    for i in range(6):
        writer.write(cv2.resize(np.roll(face, 4 * i, axis=1), (face.shape[1] // 2, face.shape[0] // 2)))
    writer.release()
    return work


def test_readme_python_blocks_run_without_traceback(stand_ins):
    for i, code in enumerate(python_blocks(README.read_text(encoding="utf-8"))):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        server = None
        if "EACFER_URL" in code:  # the `eacfer serve` client example: a real server on a port it binds itself
            from serve_testutils import Server

            server = Server([])
            env["EACFER_URL"] = server.url
        try:
            p = subprocess.run([sys.executable, "-c", code], cwd=stand_ins, env=env, capture_output=True,
                               text=True, timeout=600)
        finally:
            if server is not None:
                assert server.stop() == 0
        assert p.returncode == 0, f"README block {i} failed:\n{code}\n{p.stderr}"
        for bad in ("Traceback", "Exception ignored", "Error"):
            assert bad not in p.stderr, f"README block {i} printed {bad!r} on stderr:\n{p.stderr}"
        if "Predictor" in code:
            lines = p.stdout.splitlines()
            assert any(ln.startswith("(") and "(" in ln for ln in lines), p.stdout  # a face: box, emotion, probs
            assert sum(1 for ln in lines if re.match(r"^\d+ \d+ \{", ln)) == 6, p.stdout  # one line per frame
        if "EACFER_URL" in code:  # the astronaut's face: box, emotion, probability
            assert re.search(r"^\[[\d., ]+\] [A-Z][a-z]+ (0\.\d+|1\.0)$", p.stdout, flags=re.M), p.stdout
