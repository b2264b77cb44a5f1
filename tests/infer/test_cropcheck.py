"""``eacfer eval`` says when the images are not face crops (#30): whole photos were evaluated without a word.

Built from the bundled portrait (a real face): whole photos are the portrait on a 640×490 canvas (a posed set's
frame size), face crops are the portrait's face aligned by eacfer's own alignment, as training crops are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eacfer.commands.cli import main

PORTRAIT = Path(__file__).parents[2] / "src" / "eacfer" / "assets" / "astronaut.jpg"


def _portrait() -> np.ndarray:
    from eacfer.data.imageio import load_image

    return load_image(PORTRAIT)


def _whole_photo(path: Path, shift: int) -> Path:
    head = _portrait()[10:270, 110:350]
    canvas = np.full((490, 640, 3), 120, np.uint8)
    canvas[100:360, 150 + shift:390 + shift] = head
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path


def _face_crop(path: Path, size: int) -> Path:
    from eacfer.infer.align import align_face
    from eacfer.infer.detect import create_detector

    img = _portrait()
    with create_detector("mediapipe") as det:
        face = det.detect(img)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(align_face(img, face, size)).save(path)
    return path


def test_whole_photos_are_not_face_crops(tmp_path):
    from eacfer.infer.cropcheck import face_crop_check

    photos = [_whole_photo(tmp_path / f"p{i}.png", 40 * i) for i in range(3)]
    r = face_crop_check(photos)
    assert r["checked"] == r["with_face"] == r["small_face"] == 3 and r["face_crops"] is False
    assert all(c < 0.1 for c in r["covers"])
    assert len(r["warning"].splitlines()) == 1 and str(photos[0]) in r["warning"] and "not face crops" in r["warning"]


def test_aligned_crops_are_face_crops(tmp_path):
    from eacfer.infer.cropcheck import face_crop_check

    crops = [_face_crop(tmp_path / f"c{size}.png", size) for size in (48, 100, 224)]
    r = face_crop_check(crops)
    assert r["with_face"] == 3 and r["face_crops"] is True and "warning" not in r
    assert all(c > 0.5 for c in r["covers"])
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), (90, 90, 90)).save(blank)
    assert face_crop_check([blank])["face_crops"] is None  # no face: nothing to judge, nothing said


def test_eval_of_a_plain_class_tree_of_whole_photos_warns(tmp_path, caplog):
    """``eacfer eval --data ROOT`` on ROOT/<class>/ whole photos: evaluated, with one warning line (#30)."""
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo

    root = tmp_path / "posed"
    for i, cls in enumerate(("happy", "sad")):
        _whole_photo(root / cls / f"{cls}_{i}.png", 30 * i)
    torch.manual_seed(0)
    save_model(tmp_path / "model.pt", create_model("resnet18", num_classes=7),
               ModelInfo("resnet18", list(RAFDB_CLASSES), 32, list(IMAGENET_MEAN), list(IMAGENET_STD)))
    out = tmp_path / "eval"
    args = ["eval", "--data", str(root), "--checkpoint", str(tmp_path / "model.pt"), "--out", str(out),
            "--device", "cpu"]
    assert main(["-q", *args]) == 0
    said = [r.getMessage() for r in caplog.records if "not face crops" in r.getMessage()]
    assert len(said) == 1 and len(said[0].splitlines()) == 1 and str(root) in said[0]
    assert [r.levelname for r in caplog.records if "not face crops" in r.getMessage()] == ["WARNING"]
    caplog.clear()
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 2 and m["format"] == "folder" and m["image_check"]["face_crops"] is False
    assert main(["-q", *args, "--no-crop-check"]) == 0
    assert not [r for r in caplog.records if "not face crops" in r.getMessage()]
    assert "image_check" not in json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("layout", ["test/<class>", "<class>"])
def test_eval_takes_a_test_folder_or_a_plain_tree(tmp_path, layout, capsys, caplog):
    """The layouts a newcomer's labelled photos come in (no train/ split)."""
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo

    root = tmp_path / "mine"
    base = root / "test" if layout.startswith("test") else root
    for cls in ("surprise", "neutral"):
        _face_crop(base / cls / "a.png", 64)
    torch.manual_seed(0)
    save_model(tmp_path / "model.pt", create_model("resnet18", num_classes=7),
               ModelInfo("resnet18", list(RAFDB_CLASSES), 32, list(IMAGENET_MEAN), list(IMAGENET_STD)))
    assert main(["-q", "eval", "--data", str(root), "--checkpoint", str(tmp_path / "model.pt"), "--out",
                 str(tmp_path / "e"), "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert "folder test split" in out.out and not [r for r in caplog.records if "not face crops" in r.getMessage()]
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["image_check"]["face_crops"] is True
