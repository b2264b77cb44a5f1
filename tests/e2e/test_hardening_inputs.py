"""Hostile image inputs end to end: ``eacfer predict`` over the generated corpus (tests/hostile.py).

Every valid image is processed (orientation applied, colour converted), every broken one is reported by
name with its reason in the CSV's ``error`` column and in the summary, no traceback, exit 0; a
decompression bomb is refused from its header (checked under a hard memory limit) and a 9000×7000 photo
keeps the memory sane.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import hostile
from eacfer.constants import RAFDB_CLASSES


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile_images")
    return root, hostile.write_image_corpus(root)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A random-weight MobileNetV2 model file (64 px), as the brief prescribes."""
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD
    from eacfer.modelinfo import ModelInfo

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, create_model("mobilenet_v2"),
               ModelInfo("mobilenet_v2", list(RAFDB_CLASSES), 64, list(IMAGENET_MEAN), list(IMAGENET_STD)))
    return path


# ``python -m eacfer`` plus an exit hook recording the process's own peak RSS (VmHWM). ru_maxrss from
# wait4() would not do: it keeps the high-water mark of the forked copy of this (large) pytest process.
_MEASURED = r"""
import atexit, runpy, sys
PEAK_FILE = sys.argv.pop(1)
def _peak():
    with open("/proc/self/status") as fh:
        kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))
    with open(PEAK_FILE, "w") as out:
        out.write(str(kb // 1024))
atexit.register(_peak)
sys.argv[0] = "eacfer"
runpy.run_module("eacfer", run_name="__main__", alter_sys=True)
"""


def _run_measured(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 400) -> tuple[int, str, str, int]:
    """Run ``eacfer ARGS`` in a fresh interpreter; returns (exit code, stdout, stderr, its peak RSS in MB)."""
    peak = cwd / "peak_mb.txt"
    p = subprocess.run([sys.executable, "-c", _MEASURED, str(peak), *args], capture_output=True, text=True,
                       env=env, cwd=cwd, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, int(peak.read_text())


def test_load_image_on_the_corpus(corpus):
    """Library level: the decoded pixels are right, not just 'no exception'."""
    from eacfer.data.imageio import ImageLoadError, list_images, load_image

    root, expected = corpus
    listed = {p.relative_to(root).as_posix() for p in list_images(root)}
    assert listed == {k for k, v in expected.items() if v != "ignored"}
    ref = load_image(root / "plain.jpg").astype(np.int16)
    for rel, what in expected.items():
        if what == "ignored" or rel.startswith("big_"):
            continue
        if what.startswith("error:"):
            with pytest.raises(ImageLoadError) as ei:
                load_image(root / rel)
            assert str(ei.value).startswith(str(root / rel)), rel
            assert any(w in ei.value.reason.lower() for w in what[6:].split("|")), (rel, ei.value.reason)
            continue
        img = load_image(root / rel)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, rel
        if what != "face":
            continue
        # upright and in the right colours: close to the reference (JPEG/palette/grey losses only)
        assert img.shape == ref.shape, (rel, img.shape)
        diff = np.abs(img.astype(np.int16) - ref)
        if rel.startswith(("gray", "sixteen")):
            diff = np.abs(img.astype(np.int16).mean(2) - ref.mean(2))
        assert diff.mean() < 12, (rel, float(diff.mean()))
    # transparency composited on white; 1x1 images keep their colour
    assert tuple(load_image(root / "one_pixel.png")[0, 0]) == (200, 10, 10)


def test_big_image_decodes_with_sane_memory(corpus, tmp_path):
    root, _ = corpus
    code = textwrap.dedent(f"""
        from eacfer.data.imageio import load_image
        img = load_image({str(root / 'big_9000x7000.jpg')!r})
        with open("/proc/self/status") as fh:  # VmHWM: this process's own peak (ru_maxrss counts the fork)
            kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))
        print(img.shape, kb // 1024)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    shape, peak_mb = p.stdout.rsplit(" ", 1)
    assert shape == "(7000, 9000, 3)"
    # the RGB array alone is 189 MB; decoding may need one more copy, never many
    print(f"peak RSS decoding 9000x7000: {peak_mb.strip()} MB")
    assert int(peak_mb) < 800, peak_mb


def test_bomb_refused_under_a_hard_memory_limit(corpus):
    """With the address space capped at 1.5 GB, a decode attempt would die with MemoryError or be killed;
    the header check refuses the bomb before any pixel is allocated."""
    root, _ = corpus
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
        from eacfer.data.imageio import ImageLoadError, load_image
        try:
            load_image({str(root / 'bomb.png')!r})
        except ImageLoadError as e:
            print("REFUSED", e.reason)
        # the limit is real: allocating what the bomb would decode to fails here
        try:
            bytearray(3 * 60000 * 60000)
        except MemoryError:
            print("LIMIT-ACTIVE")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "REFUSED refused:" in p.stdout and "decompression bomb" in p.stdout
    assert "LIMIT-ACTIVE" in p.stdout


def test_predict_hostile_folder(corpus, model_file, tmp_path):
    """``python -m eacfer predict`` on the whole corpus: one real process, exit 0, every file accounted for."""
    root, expected = corpus
    out = tmp_path / "out dir ü"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8",
           "EACFER_CACHE_DIR": str(tmp_path / "cache")}
    rc, stdout, stderr, peak_mb = _run_measured(
        ["predict", str(root), "--checkpoint", str(model_file), "--out", str(out), "--save-images"], env, tmp_path)
    assert rc == 0, stderr
    assert "Traceback" not in stdout + stderr
    with open(out / "predictions.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_file: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_file.setdefault(Path(r["file"]).relative_to(root).as_posix(), []).append(r)
    listed = {k for k, v in expected.items() if v != "ignored"}
    assert set(by_file) == listed  # stray non-images and hidden files are not listed; nothing is lost
    errors = [k for k, v in expected.items() if v.startswith("error:")]
    for rel in listed:
        rs = by_file[rel]
        what = expected[rel]
        if what.startswith("error:"):
            assert len(rs) == 1 and rs[0]["emotion"] == "" and rs[0]["face"] == "", rel
            assert any(w in rs[0]["error"].lower() for w in what[6:].split("|")), (rel, rs[0]["error"])
            assert rel.rsplit("/", 1)[-1] in stdout or len(errors) > 10, rel  # named in the summary
        else:
            assert all(r["error"] == "" for r in rs), (rel, rs[0]["error"])
        if what == "face":
            faces = [r for r in rs if r["face"] != ""]
            assert faces, f"{rel}: no face found (orientation or colour conversion broken?)"
            assert faces[0]["emotion"] in RAFDB_CLASSES
            probs = [float(faces[0][f"p_{c}"]) for c in RAFDB_CLASSES]
            assert abs(sum(probs) - 1) < 1e-3
    # the face box of EXIF-rotated photos is where the upright face is
    ref = [float(by_file["plain.jpg"][0][k]) for k in "xywh"]
    for o in (3, 6, 8):
        box = [float(by_file[f"exif_{o}.jpg"][0][k]) for k in "xywh"]
        assert np.allclose(box, ref, atol=25), (o, box, ref)
    assert f"{len(errors)} errors" in stdout
    summary = json.loads((out / "predictions.json").read_text(encoding="utf-8"))["summary"]
    assert summary["errors"] == len(errors) and summary["files"] == len(listed)
    assert not list(out.rglob(".*"))  # no temporary files left behind
    # one annotated copy per readable image, each a valid JPEG (nested, non-ASCII names included)
    from PIL import Image

    readable = [k for k in listed if not expected[k].startswith("error:")]
    annotated = sorted(p for p in (out / "annotated").rglob("*") if p.is_file())
    assert len(annotated) == len(readable)
    for a in annotated:
        with Image.open(a) as im:
            im.verify()
    # a 9000x7000 photo among them, the bomb refused: memory stays sane (≈ models + a few copies of 189 MB)
    print(f"predict peak RSS: {peak_mb} MB")
    assert peak_mb < 2500, peak_mb


def test_output_folder_inside_the_input_folder(model_file, tmp_path, capsys, monkeypatch):
    """``eacfer predict photos --out photos/results --save-images`` run twice must not read its own
    annotated copies back as new photos."""
    import shutil

    from eacfer.commands.cli import main

    monkeypatch.setenv("EACFER_CACHE_DIR", str(tmp_path / "cache"))
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(hostile.FACE, photos / "a.jpg")
    shutil.copy(hostile.FACE, photos / "b.jpg")
    args = ["predict", str(photos), "--checkpoint", str(model_file), "--out", str(photos / "results"),
            "--save-images", "--detector", "none"]
    for _ in range(2):
        assert main(args) == 0
        assert "2 files: 2 images read" in capsys.readouterr().out
    with open(photos / "results" / "predictions.csv", newline="", encoding="utf-8") as fh:
        assert sorted(Path(r["file"]).name for r in csv.DictReader(fh)) == ["a.jpg", "b.jpg"]
