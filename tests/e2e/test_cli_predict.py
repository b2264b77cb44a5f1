"""``eacfer predict`` on a hostile folder: every valid image processed, every broken file an error row, exit 0."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from eacfer.commands.cli import main
from inference_testutils import FACE, write_hostile_pt
from sigint_support import needs_sigint

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, predictor, face_rgb, exported_onnx, …


def _bomb_png(path):
    """A tiny PNG whose header claims 100000×100000 pixels (a decompression bomb)."""
    import io

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    b = bytearray(buf.getvalue())
    i = b.find(b"IHDR")
    b[i + 4:i + 12] = struct.pack(">II", 100_000, 100_000)
    b[i + 17:i + 21] = struct.pack(">I", zlib.crc32(bytes(b[i:i + 17])) & 0xFFFFFFFF)
    path.write_bytes(bytes(b))


@pytest.fixture(scope="module")
def corpus(face_rgb, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    sub = root / "sub dir" / "ñested"
    sub.mkdir(parents=True)
    im = Image.fromarray(face_rgb)
    im.save(sub / "visage été.jpg", quality=92)                       # spaces + non-ASCII, nested
    im.convert("RGBA").save(root / "rgba.png")
    im.convert("LA").save(root / "gray_alpha.png")
    im.convert("L").save(root / "gray.jpg")
    im.convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.gif")
    Image.fromarray((face_rgb.mean(2) * 257).astype(np.uint16)).save(root / "sixteen.png")
    im.convert("CMYK").save(root / "cmyk.jpg")
    im.save(root / "photo.webp", quality=90)
    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(np.rot90(face_rgb, k=1)).save(root / "rotated.jpg", exif=ex)
    Image.new("RGB", (1, 1), (9, 9, 9)).save(root / "tiny.png")
    Image.new("RGB", (320, 240), (40, 120, 200)).save(root / "noface.png")
    (root / "zero.jpg").write_bytes(b"")
    full = (root / "rgba.png").read_bytes()
    (root / "truncated.png").write_bytes(full[: len(full) // 2])
    (root / "text.jpg").write_text("hello, I am not a JPEG\n")
    _bomb_png(root / "bomb.png")
    (root / "notes.txt").write_text("stray file, not an image")
    return root


FACE_FILES = {"visage été.jpg", "rgba.png", "gray_alpha.png", "gray.jpg", "palette.gif", "sixteen.png", "cmyk.jpg",
              "photo.webp", "rotated.jpg"}
NO_FACE = {"tiny.png", "noface.png"}
BROKEN = {"zero.jpg", "truncated.png", "text.jpg", "bomb.png"}


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_hostile_folder_subprocess(model_pt, corpus, tmp_path, inference_cache):
    out = tmp_path / "out"
    env = {**os.environ, "EACFER_CACHE_DIR": str(inference_cache), "PYTHONIOENCODING": "utf-8"}
    p = subprocess.run([sys.executable, "-m", "eacfer", "predict", str(corpus), "--checkpoint", str(model_pt),
                        "--out", str(out), "--save-images"], capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert "15 files: 11 images read" in p.stdout and "4 errors" in p.stdout
    rows = _read_csv(out / "predictions.csv")
    by_name: dict[str, list[dict]] = {}
    for r in rows:
        by_name.setdefault(os.path.basename(r["file"]), []).append(r)
    assert set(by_name) == FACE_FILES | NO_FACE | BROKEN  # notes.txt is not an image: not listed
    for name in FACE_FILES:
        (r,) = by_name[name]
        assert r["error"] == "" and r["face"] == "0" and r["emotion"] in {c for c in
                                                                           ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")}
        x, y, w, h = (float(r[k]) for k in "xywh")
        assert 130 < x < 230 and 30 < y < 130 and 60 < w < 160, (name, x, y, w)  # the face, upright
    for name in NO_FACE:
        (r,) = by_name[name]
        assert r["error"] == "" and r["face"] == "" and r["emotion"] == "" and r["x"] == ""
    for name in BROKEN:
        (r,) = by_name[name]
        assert r["error"] and r["face"] == "" and r["emotion"] == "", name
    assert "bomb" in by_name["bomb.png"][0]["error"] or "pixels" in by_name["bomb.png"][0]["error"]
    data = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert data["columns"] == list(rows[0].keys())
    assert len(data["predictions"]) == len(rows)
    assert all(list(d.keys()) == data["columns"] for d in data["predictions"])
    assert data["summary"]["errors"] == 4 and data["summary"]["faces"] == len(FACE_FILES)
    annotated = sorted(p.name for p in (out / "annotated").rglob("*.jpg"))
    assert len(annotated) == len(FACE_FILES | NO_FACE)


def test_predict_cam_images_and_explicit_file(model_pt, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["predict", str(FACE), "--checkpoint", str(model_pt), "--out", str(out), "--save-images",
                 "--cam", "--detector-mode", "short"]) == 0
    assert "1 files: 1 images read, 1 faces" in capsys.readouterr().out
    img = np.asarray(Image.open(out / "annotated" / "astronaut.jpg"))
    orig = np.asarray(Image.open(FACE))
    diff = np.abs(img.astype(int) - orig).sum(2)
    assert diff[100:160, 190:260].mean() > 20  # the CAM is blended over the face
    assert diff[400:, :100].mean() < 8  # far from the face the picture is untouched


def test_bad_arguments_and_nothing_processed(model_pt, tmp_path, capsys):
    base = ["--checkpoint", str(model_pt), "--out", str(tmp_path / "o")]
    assert main(["predict", str(tmp_path / "missing.jpg"), *base]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), *base]) == 2
    assert "no image files" in capsys.readouterr().err
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    assert main(["predict", str(bad), *base]) == 1  # ran, but nothing could be processed
    assert "1 errors" in capsys.readouterr().out
    (tmp_path / "afile").write_text("x")
    assert main(["predict", str(FACE), "--checkpoint", str(model_pt), "--out", str(tmp_path / "afile")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["predict", str(FACE), *base, "--score-threshold", "2"]) == 2
    assert main(["predict", str(FACE), *base, "--small-face", "-1"]) == 2
    assert "--small-face must be >= 0" in capsys.readouterr().err
    assert main(["predict", str(FACE), *base, "--detector", "nope"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_hostile_model_refused(tmp_path, capsys):
    marker = tmp_path / "marker"
    evil = write_hostile_pt(tmp_path / "evil.pt", marker)
    assert main(["predict", str(FACE), "--checkpoint", str(evil), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "evil.pt" in err and "refused" in err
    assert not marker.exists()


@needs_sigint
@pytest.mark.parametrize("where", ["writing", "inference"])
def test_real_sigint_keeps_batch_outputs_in_step(predictor, face_rgb, tmp_path, monkeypatch, where):
    """A real SIGINT while file 3's rows are written finishes file 3 first; one during file 3's
    inference drops it whole. Either way the CSV, the JSON and the summary count the same files."""
    import signal

    from eacfer.infer.jobs import photos as batch
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        Image.fromarray(face_rgb).save(photos / f"p{i}.jpg")
    seen = []
    if where == "writing":
        real_row = batch._row

        def row(file, *a, **kw):
            seen.append(file)
            if len(seen) == 3:
                os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode, mid-write
            return real_row(file, *a, **kw)

        monkeypatch.setattr(batch, "_row", row)
    else:
        real_predict = type(predictor).predict

        def predict(self, file, **kw):
            seen.append(file)
            if len(seen) == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return real_predict(self, file, **kw)

        monkeypatch.setattr(type(predictor), "predict", predict)
    s = batch.predict_paths(predictor, [photos], tmp_path / "out", save_images=True, progress=False)
    done = 3 if where == "writing" else 2
    assert s["interrupted"] and s["files"] == done, s
    rows = _read_csv(tmp_path / "out" / "predictions.csv")
    js = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len({r["file"] for r in rows}) == len({r["file"] for r in js["predictions"]}) == done
    assert js["summary"]["files"] == done and len(list((tmp_path / "out" / "annotated").iterdir())) == done
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
