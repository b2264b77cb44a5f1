"""Links and ``..`` out of every dataset format that names image files (issue 29's hostile corpus).

Specification: an image path that resolves outside the dataset folder (a symlink, ``..``) is refused —
counted as a problem, or an error naming ``FILE:LINE`` under ``strict`` — and never read; AffectNet's face
crops are never written outside the crop cache, whatever the ``subDirectory_filePath`` holds (the attack
run wrote a 224×224 JPEG into the system temp folder through ``link/../../../../../../escape2.jpg``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from dataset_makers import make_affectnet, make_ferplus_folders
from eacfer.data.formats import load_split

BOX = (20, 10, 40, 50)


def _img(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 48), (value, value // 2, 255 - value)).save(path)
    return path


def _link_out(target: Path, secret: Path) -> None:
    target.unlink()
    target.symlink_to(secret)


def _check_refused(root: Path, split: str, secret_name: str, fmt: str | None = None, **kw) -> None:
    data = load_split(root, split, format=fmt, **kw) if fmt else load_split(root, split, **kw)
    assert any("outside the dataset folder" in p for p in data.problems), data.problems
    assert all(s.path is None or os.path.realpath(s.path) != os.path.realpath(root.parent / "outside" /
                                                                               secret_name) for s in data.samples)
    with pytest.raises(ValueError, match="outside the dataset folder"):
        load_split(root, split, format=fmt, strict=True, **kw) if fmt else load_split(root, split, strict=True, **kw)


@pytest.fixture()
def secret(tmp_path) -> Path:
    return _img(tmp_path / "outside" / "secret.jpg", value=250)


def test_rafdb_kaggle_link_out_refused(tmp_path, secret):
    root = tmp_path / "kaggle"
    rows = ["image,label"]
    for i in range(3):
        _img(root / "DATASET" / "train" / "1" / f"train_{i + 1:05d}_aligned.jpg", value=10 * i)
        rows.append(f"train_{i + 1:05d}_aligned.jpg,1")
    (root / "train_labels.csv").write_text("\n".join(rows) + "\n")
    _link_out(root / "DATASET" / "train" / "1" / "train_00002_aligned.jpg", secret)
    _check_refused(root, "train", secret.name)


def test_ferplus_folders_link_out_refused(tmp_path, secret):
    root = make_ferplus_folders(tmp_path / "fp", {"train": [(f"fer{i:07d}.png", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                                                            for i in range(3)]})
    _link_out(root / "FER2013Train" / "fer0000001.png", secret)
    _check_refused(root, "train", secret.name)


def test_affectnet_link_out_refused(tmp_path, secret):
    rows = [("0/a.jpg", *BOX, 0), ("0/b.jpg", *BOX, 1)]
    root = make_affectnet(tmp_path / "an", rows, [("0/a.jpg", *BOX, 0)],
                          images={"0/a.jpg": (100, 80), "0/b.jpg": (100, 80)})
    _link_out(root / "Manually_Annotated_Images" / "0" / "b.jpg", secret)
    _check_refused(root, "train", secret.name, cache_dir=tmp_path / "cache")


def test_affectnet_crops_never_written_outside_the_cache(tmp_path):
    """``../escape1.jpg`` stays in ROOT as a source but its crop went beside the cache; through a link inside
    the images folder, ``link/../../../../../../escape2.jpg`` reached far outside it."""
    images = ["0/ok.jpg", "../escape1.jpg", "link/../../../../../../escape2.jpg"]
    rows = [(p, *BOX, 1) for p in images]
    root = make_affectnet(tmp_path / "an", rows, [("0/ok.jpg", *BOX, 1)], images={"0/ok.jpg": (100, 80)})
    imgs = root / "Manually_Annotated_Images"
    ok = imgs / "0" / "ok.jpg"
    (root / "escape1.jpg").write_bytes(ok.read_bytes())            # inside ROOT: the source check passes
    deep = imgs / "a" / "b" / "c" / "d" / "e" / "f"
    deep.mkdir(parents=True)
    (imgs / "link").symlink_to(deep)                                 # link/../../../../../.. = the images folder
    (imgs / "escape2.jpg").write_bytes(ok.read_bytes())
    cache = tmp_path / "c1" / "c2" / "c3" / "c4" / "c5" / "c6" / "cache"
    before = {p for p in tmp_path.rglob("*")}
    data = load_split(root, "train", cache_dir=cache)
    assert [s.name for s in data.samples] == ["0/ok.jpg"]
    problems = "\n".join(data.problems)
    assert problems.count("outside the crop cache") == 2 and "training.csv:3:" in problems \
        and "training.csv:4:" in problems, problems
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p.is_relative_to(cache) or p in cache.parents for p in new), sorted(map(str, new))
    with pytest.raises(ValueError, match=r"training\.csv:3: refused, the crop of \.\./escape1\.jpg"):
        load_split(root, "train", cache_dir=tmp_path / "strict", strict=True)
