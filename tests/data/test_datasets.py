"""Dataset formats (rafdb, rafdb-kaggle, folder, fer2013), detection, hostile entries and FERDataset."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from eacfer.constants import RAFDB_CLASSES
from eacfer.data.datasets import FER2013_CLASSES, FERDataset, detect_format, load_split
from eacfer.data.imageio import ImageLoadError
from eacfer.data.labels import parse_label_file


def _img(path: Path, value: int = 128, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path)
    return path


def make_rafdb(root: Path, train: list[int], test: list[int], label_text: str | None = None) -> Path:
    """Official layout with tiny images; labels are 0-based here, written 1-based."""
    names = [(f"train_{i + 1:05d}.jpg", y) for i, y in enumerate(train)] + [
        (f"test_{i + 1:04d}.jpg", y) for i, y in enumerate(test)
    ]
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    text = label_text if label_text is not None else "\n".join(f"{n} {y + 1}" for n, y in names)
    (root / "EmoLabel" / "list_patition_label.txt").write_text(text)
    for i, (n, y) in enumerate(names):
        _img(root / "Image" / "aligned" / n.replace(".jpg", "_aligned.jpg"), value=20 * y + i)
    return root


# ------------------------------------------------------------------------------------ rafdb
def test_rafdb_synthetic_fixture(synth_rafdb):
    assert detect_format(synth_rafdb) == "rafdb"
    train, test = load_split(synth_rafdb, "train"), load_split(synth_rafdb, "test")
    assert (len(train.samples), len(test.samples)) == (56, 28)
    assert train.format == "rafdb" and train.class_names == list(RAFDB_CLASSES) and train.problems == []
    lf = parse_label_file(synth_rafdb / "EmoLabel" / "list_patition_label.txt")
    expected = {e.name: e.label for e in lf.entries}
    assert all(expected[s.name] == s.label for s in train.samples + test.samples)
    assert train.samples[0].name == "train_00001.jpg"
    assert train.samples[0].path == synth_rafdb / "Image" / "aligned" / "train_00001_aligned.jpg"
    assert train.labels().dtype == np.int64 and set(train.labels()) <= set(range(7))


def test_rafdb_label_file_replaces_train_labels_only(tmp_path):
    root = make_rafdb(tmp_path / "raf", train=[0, 1, 2, 3], test=[4, 5])
    (root / "EmoLabel" / "noise01.txt").write_text(
        "train_00001.jpg 7\r\ntrain_00002.jpg 2\r\ntrain_00003.jpg 3\r\ntrain_00004.jpg 4"
    )
    for lf in ("noise01.txt", root / "EmoLabel" / "noise01.txt"):
        train = load_split(root, "train", label_file=lf)
        assert train.labels().tolist() == [6, 1, 2, 3]
        test = load_split(root, "test", label_file=lf)
        assert test.labels().tolist() == [4, 5]
    with pytest.raises(FileNotFoundError, match="noise09.txt"):
        load_split(root, "train", label_file="noise09.txt")


def test_rafdb_missing_image_skipped_or_strict(tmp_path):
    root = make_rafdb(tmp_path / "raf", train=[0, 1, 2], test=[3])
    (root / "Image" / "aligned" / "train_00002_aligned.jpg").unlink()
    train = load_split(root, "train")
    assert [s.name for s in train.samples] == ["train_00001.jpg", "train_00003.jpg"]
    assert len(train.problems) == 1 and "list_patition_label.txt:2: image not found" in train.problems[0]
    with pytest.raises(ValueError, match=r"list_patition_label\.txt:2: image not found"):
        load_split(root, "train", strict=True)


def test_rafdb_malformed_lines_crlf_no_final_newline(tmp_path):
    text = "train_00001.jpg 1\r\ntrain_00002.jpg 9\r\n\r\ntrain_00001.jpg 2\r\n../../etc/passwd 1\r\ntest_0001.jpg 4"
    root = make_rafdb(tmp_path / "raf", train=[0, 1], test=[3], label_text=text)
    train = load_split(root, "train")
    assert [s.name for s in train.samples] == ["train_00001.jpg"]
    assert len(train.problems) == 3
    assert any(":2: label 9 out of range" in p for p in train.problems)
    assert any(":4: duplicate name" in p for p in train.problems)
    assert any(":5: name contains a path separator" in p for p in train.problems)
    with pytest.raises(ValueError, match=r":2: label 9 out of range"):
        load_split(root, "train", strict=True)


def test_rafdb_symlink_escaping_root_always_refused(tmp_path):
    root = make_rafdb(tmp_path / "raf", train=[0, 1], test=[2])
    secret = _img(tmp_path / "outside" / "secret.jpg")
    target = root / "Image" / "aligned" / "train_00002_aligned.jpg"
    target.unlink()
    os.symlink(secret, target)
    train = load_split(root, "train")
    assert [s.name for s in train.samples] == ["train_00001.jpg"]
    assert "resolves outside the dataset folder" in train.problems[0]
    with pytest.raises(ValueError, match="outside the dataset folder"):
        load_split(root, "train", strict=True)


def test_rafdb_unknown_split_and_empty(tmp_path):
    root = make_rafdb(tmp_path / "raf", train=[0], test=[1])
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_split(root, "val")
    shutil.rmtree(root / "Image")
    with pytest.raises(ValueError, match="no usable 'train' samples"):
        load_split(root, "train")


# ------------------------------------------------------------------------------------ rafdb-kaggle
def make_kaggle(root: Path, train: list[int], test: list[int], csv: bool = True) -> Path:
    """Kaggle re-packaging: ROOT/DATASET/{train,test}/{1..7}/NAME_aligned.jpg + ROOT/{split}_labels.csv."""
    for split, labels, width in (("train", train, 5), ("test", test, 4)):
        rows = ["image,label"]
        for i, y in enumerate(labels):
            name = f"{split}_{i + 1:0{width}d}_aligned.jpg"
            _img(root / "DATASET" / split / str(y + 1) / name, value=30 * y)
            rows.append(f"{name},{y + 1}")
        if csv:
            (root / f"{split}_labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_kaggle_layout_from_root_and_from_dataset_folder(tmp_path):
    root = make_kaggle(tmp_path / "raf-db-dataset", train=[3, 0, 6, 3, 1], test=[4, 2])
    for r in (root, root / "DATASET"):
        assert detect_format(r) == "rafdb-kaggle"
        train, test = load_split(r, "train"), load_split(r, "test")
        assert train.labels().tolist() == [3, 0, 6, 3, 1] and test.labels().tolist() == [4, 2]
        assert train.samples[1].name == "train_00002_aligned.jpg"
        assert train.samples[1].path == root / "DATASET" / "train" / "1" / "train_00002_aligned.jpg"
        assert train.class_names == list(RAFDB_CLASSES) and train.problems == []


def test_kaggle_without_csv_uses_folders(tmp_path):
    root = make_kaggle(tmp_path / "k", train=[3, 0, 6], test=[4], csv=False)
    assert detect_format(root) == "rafdb-kaggle"
    train = load_split(root, "train")
    assert sorted((s.name, s.label) for s in train.samples) == [
        ("train_00001_aligned.jpg", 3),
        ("train_00002_aligned.jpg", 0),
        ("train_00003_aligned.jpg", 6),
    ]


def test_kaggle_csv_problems_and_official_label_file(tmp_path):
    root = make_kaggle(tmp_path / "k", train=[3, 0, 6], test=[4])
    with open(root / "train_labels.csv", "a") as fh:
        fh.write("train_09999_aligned.jpg,2\n../escape.jpg,1\ntrain_00001_aligned.jpg,0\n")
    train = load_split(root, "train")
    assert len(train.samples) == 3 and len(train.problems) == 3
    assert any("train_labels.csv:5: image not found" in p for p in train.problems)
    assert any("train_labels.csv:6: name contains a path separator" in p for p in train.problems)
    assert any("train_labels.csv:7: label 0 out of range" in p for p in train.problems)
    # An official-format noise file (names without "_aligned") replaces the train labels.
    (tmp_path / "noise.txt").write_text("train_00001.jpg 1\ntrain_00002.jpg 1\ntrain_00003.jpg 1\n")
    noisy = load_split(root, "train", label_file=tmp_path / "noise.txt")
    assert noisy.labels().tolist() == [0, 0, 0]
    assert load_split(root, "test", label_file=tmp_path / "noise.txt").labels().tolist() == [4]


# ------------------------------------------------------------------------------------ folder
def test_folder_with_rafdb_names_uses_rafdb_order(tmp_path):
    root = tmp_path / "f"
    for split in ("train", "test"):
        for cls in ("happy", "Sad", "ANGRY", "surprise", "fear", "disgust", "neutral"):
            _img(root / split / cls / f"{cls} 1.jpg")
    _img(root / "train" / "happy" / "nested" / "ü 2.png")
    assert detect_format(root) == "folder"
    train = load_split(root, "train")
    assert train.class_names == list(RAFDB_CLASSES)
    by_name = {s.name: s.label for s in train.samples}
    assert by_name["happy/happy 1.jpg"] == RAFDB_CLASSES.index("Happiness")
    assert by_name["ANGRY/ANGRY 1.jpg"] == RAFDB_CLASSES.index("Anger")
    assert by_name["happy/nested/ü 2.png"] == RAFDB_CLASSES.index("Happiness")
    assert len(load_split(root, "test").samples) == 7


def test_folder_other_names_sorted_and_shared_across_splits(tmp_path):
    root = tmp_path / "ferplus"
    for cls in ("neutral", "contempt", "happiness"):
        _img(root / "train" / cls / "a.png")
    _img(root / "val" / "happiness" / "b.png")  # "test" falls back to "val"; it lacks two classes
    train, test = load_split(root, "train", format="folder"), load_split(root, "test", format="folder")
    assert train.class_names == test.class_names == ["contempt", "happiness", "neutral"]
    assert test.labels().tolist() == [1]


def test_folder_symlink_outside_and_stray_files(tmp_path):
    root = tmp_path / "f"
    _img(root / "train" / "a" / "ok.jpg")
    _img(root / "train" / "b" / "ok.jpg")
    os.symlink(_img(tmp_path / "elsewhere" / "x.jpg"), root / "train" / "a" / "link.jpg")
    os.symlink(tmp_path / "elsewhere", root / "train" / "b" / "linkdir")  # not followed by the lister
    _img(root / "train" / "stray.jpg")
    train = load_split(root, "train")
    assert sorted(s.name for s in train.samples) == ["a/ok.jpg", "b/ok.jpg"]
    assert any("link.jpg resolves outside the dataset folder" in p for p in train.problems)
    assert any("outside class folders" in p for p in train.problems)
    with pytest.raises(ValueError, match="outside the dataset folder"):
        load_split(root, "train", strict=True)


def test_folder_rejects_label_file(tmp_path):
    root = tmp_path / "f"
    _img(root / "train" / "a" / "x.jpg")
    with pytest.raises(ValueError, match="label file"):
        load_split(root, "train", label_file="noise01.txt")


# ------------------------------------------------------------------------------------ fer2013
def _fer_csv(path: Path, bad: bool = True) -> Path:
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for emo, usage in ((3, "Training"), (0, "Training"), (6, "PublicTest"), (5, "PrivateTest")):
        rows.append(f'{emo},"{" ".join(str(v) for v in rng.integers(0, 256, 2304))}",{usage}')
    if bad:
        rows.append('9,"' + " ".join(["1"] * 2304) + '",Training')  # emotion out of range
        rows.append('2,"1 2 3",Training')  # too few pixels
        rows.append('2,"' + " ".join(["300"] * 2304) + '",Training')  # out of range pixel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\r\n".join(rows))
    return path


def test_fer2013_splits_pixels_and_problems(tmp_path):
    csv_path = _fer_csv(tmp_path / "fer" / "fer2013.csv")
    for root in (tmp_path / "fer", csv_path):
        assert detect_format(root) == "fer2013"
        train = load_split(root, "train")
        assert train.class_names == list(FER2013_CLASSES)
        assert train.labels().tolist() == [3, 0]
        assert len(train.problems) == 3 and all("fer2013.csv:" in p for p in train.problems)
        px = train.samples[0].pixels
        assert px.shape == (48, 48, 3) and px.dtype == np.uint8 and (px[..., 0] == px[..., 2]).all()
        assert train.samples[0].path is None
    assert load_split(csv_path, "test").labels().tolist() == [6]
    assert load_split(csv_path, "test-private").labels().tolist() == [5]
    with pytest.raises(ValueError, match=r"fer2013\.csv:6: emotion must be 0\.\.6"):
        load_split(csv_path, "train", strict=True)


# ------------------------------------------------------------------------------------ detection
def test_unknown_layout_error_lists_every_layout(tmp_path):
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "file.txt").write_text("hi")
    with pytest.raises(ValueError) as ei:
        detect_format(tmp_path / "random")
    msg = str(ei.value)
    for fmt in (
        "rafdb:",
        "rafdb-kaggle:",
        "folder:",
        "fer2013:",
        "list_patition_label.txt",
        "train_labels.csv",
    ):
        assert fmt in msg
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown dataset format"):
        load_split(tmp_path / "random", format="imagenet")


def test_with_labels(synth_rafdb):
    train = load_split(synth_rafdb, "train")
    new = train.with_labels([(y + 1) % 7 for y in train.labels()])
    assert ((new.labels() - train.labels()) % 7 == 1).all()
    assert [s.path for s in new.samples] == [s.path for s in train.samples]
    with pytest.raises(ValueError):
        train.with_labels([0])
    with pytest.raises(ValueError):
        train.with_labels([7] * len(train.samples))


# ------------------------------------------------------------------------------------ FERDataset
@pytest.fixture()
def broken_rafdb(tmp_path):
    root = make_rafdb(tmp_path / "raf", train=[0, 1, 2, 3, 4], test=[5])
    aligned = root / "Image" / "aligned"
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(aligned / "train_00002_aligned.jpg", quality=90)
    good = (aligned / "train_00002_aligned.jpg").read_bytes()
    (aligned / "train_00002_aligned.jpg").write_bytes(good[: len(good) // 2])  # truncated pixel data
    (aligned / "train_00004_aligned.jpg").write_text("not an image")  # text named .jpg
    return root


def test_ferdataset_skips_broken_images(broken_rafdb):
    ds = FERDataset(load_split(broken_rafdb, "train"), progress=False)
    assert len(ds) == 3 and [s.name for s in ds.samples] == [
        "train_00001.jpg",
        "train_00003.jpg",
        "train_00005.jpg",
    ]
    skipped = {Path(f).name: reason for f, reason in ds.skipped}
    assert set(skipped) == {"train_00002_aligned.jpg", "train_00004_aligned.jpg"}
    assert (
        "truncated" in skipped["train_00002_aligned.jpg"]
        and "not an image" in skipped["train_00004_aligned.jpg"]
    )
    assert ds.labels().tolist() == [0, 2, 4]
    img, label, idx = ds[1]
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8 and (label, idx) == (2, 1)
    assert ds.class_names == list(RAFDB_CLASSES)


def test_ferdataset_strict_raises_naming_file(broken_rafdb):
    with pytest.raises(ImageLoadError, match=r"train_00002_aligned\.jpg: truncated"):
        FERDataset(load_split(broken_rafdb, "train"), strict=True)


def test_ferdataset_lazy_checks_headers(broken_rafdb):
    ds = FERDataset(load_split(broken_rafdb, "train"), cache=False)
    # The text file fails the header check; the truncated JPEG has a valid header and fails on decode.
    assert [Path(f).name for f, _ in ds.skipped] == ["train_00004_aligned.jpg"]
    assert len(ds) == 4
    assert ds.image(0).shape == (8, 8, 3)
    with pytest.raises(ImageLoadError, match="truncated"):
        ds.image(1)


def test_ferdataset_transform_and_uint8_stack(synth_rafdb):
    ds = FERDataset(load_split(synth_rafdb, "test"), transform=lambda im: im.mean())
    x, label, idx = ds[3]
    assert isinstance(x, float) and idx == 3 and label == ds.samples[3].label
    stack = ds.uint8_stack()
    assert stack.shape == (28, 48, 48, 3) and stack.dtype == np.uint8
    assert np.array_equal(stack[5], ds.image(5))
    small = ds.uint8_stack(size=24)
    assert small.shape == (28, 24, 24, 3)
    assert abs(float(small[5].mean()) - float(stack[5].mean())) < 3.0
    # the size every image shares (what a model file records as face_size), cached or header-checked
    assert ds.common_size == (48, 48) and ds.face_size == 48
    assert FERDataset(load_split(synth_rafdb, "test"), cache=False).common_size == (48, 48)


def test_ferdataset_mixed_sizes_need_size(tmp_path):
    root = tmp_path / "f"
    _img(root / "train" / "a" / "1.png", size=(8, 8))
    _img(root / "train" / "a" / "2.png", size=(10, 6))
    ds = FERDataset(load_split(root, "train"))
    with pytest.raises(ValueError, match="pass size="):
        ds.uint8_stack()
    assert ds.uint8_stack(size=16).shape == (2, 16, 16, 3)
    assert ds.common_size is None and FERDataset(load_split(root, "train"), cache=False).common_size is None
    assert ds.face_size is None


def test_ferdataset_fer2013_pixels(tmp_path):
    ds = FERDataset(load_split(_fer_csv(tmp_path / "fer2013.csv", bad=False), "train"), cache=False)
    assert len(ds) == 2 and ds.skipped == []
    assert ds.image(0).shape == (48, 48, 3)
    assert ds.uint8_stack().shape == (2, 48, 48, 3)
    assert ds.common_size == (48, 48)


# ------------------------------------------------------------------------------------ fuzzing
_csv_text = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.builds(lambda n, y: f"{n},{y}", st.text(max_size=15), st.integers(-2, 9)),
        st.sampled_from(
            ["image,label", "train_00001_aligned.jpg,4", '"a,b",1', "x,1,2,3", '"unterminated,1']
        ),
    ),
    max_size=10,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_csv_text, raw=st.binary(max_size=30), strict=st.booleans())
def test_fuzz_kaggle_csv_parser(tmp_path, lines, raw, strict):
    root = tmp_path / "kfuzz"  # shared by all examples; each one rewrites the CSV
    if not root.exists():
        _img(root / "DATASET" / "train" / "4" / "train_00001_aligned.jpg")
    (root / "train_labels.csv").write_bytes("\n".join(lines).encode("utf-8", errors="replace") + raw)
    try:
        split = load_split(root, "train", format="rafdb-kaggle", strict=strict)
    except ValueError as e:
        assert str(root) in str(e)
    else:
        assert [s.name for s in split.samples] == ["train_00001_aligned.jpg"]
        assert split.labels().tolist() == [3]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.text(max_size=4), st.text(max_size=30), st.sampled_from(["Training", "PublicTest", "x", ""])
        ),
        max_size=6,
    ),
    header=st.sampled_from(["emotion,pixels,Usage", "emotion,pixels", "pixels,emotion,Usage", "a,b"]),
)
def test_fuzz_fer2013_csv_parser(tmp_path, rows, header):
    path = tmp_path / "fer2013.csv"
    body = "\n".join(",".join(f'"{c}"' if i == 1 else c for i, c in enumerate(r)) for r in rows)
    path.write_text(header + "\n" + body, encoding="utf-8", errors="replace")
    for split in ("train", "test"):
        try:
            data = load_split(path, split, format="fer2013")
        except ValueError as e:
            assert "fer2013.csv" in str(e)
        else:
            assert all(s.pixels.shape == (48, 48, 3) for s in data.samples)


def test_folder_test_split_alone_and_plain_class_tree(tmp_path):
    """Your own labelled photos (#30): ROOT/test/<class>/ alone is detected as a folder set; a plain ROOT/<class>/
    tree is one too when its folders name emotions, else with --format folder; it is a test set only."""
    only_test = tmp_path / "ckset"
    for cls in ("happy", "sad"):
        _img(only_test / "test" / cls / "a.jpg")
    assert detect_format(only_test) == "folder"
    assert load_split(only_test, "test").class_names == ["Happiness", "Sadness"]  # RAF-DB order and names

    plain = tmp_path / "photos"
    for cls in ("Happy", "angry", "surprised"):
        _img(plain / cls / "IMG_1.jpg")
        _img(plain / cls / "sub" / "IMG_2.png")
    assert detect_format(plain) == "folder"
    test = load_split(plain, "test")
    assert test.class_names == ["Surprise", "Happiness", "Anger"] and len(test.samples) == 6
    assert {s.name for s in test.samples} >= {"Happy/IMG_1.jpg", "angry/sub/IMG_2.png"}
    with pytest.raises(FileNotFoundError, match="plain ROOT/<class>/ tree is a test set only"):
        load_split(plain, "train")

    other = tmp_path / "pets"
    for cls in ("cat", "dog"):
        _img(other / cls / "x.jpg")
    with pytest.raises(ValueError, match="unknown dataset layout") as err:
        detect_format(other)
    assert "--format folder" in str(err.value) and "ROOT/<class>/" in str(err.value)
    pets = load_split(other, "test", format="folder")
    assert pets.class_names == ["cat", "dog"] and pets.labels().tolist() == [0, 1]
