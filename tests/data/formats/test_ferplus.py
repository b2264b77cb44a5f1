"""FERPlus: vote rules of the official ferplus.py (majority / cross-entropy), both distributed layouts, splits,
7/8 classes, detection and bad input. Expected values are worked out by hand from the rules in
microsoft/FERPlus src/ferplus.py (_process_data, load_folders), not from eacfer's output."""

from __future__ import annotations

import numpy as np
import pytest

from dataset_makers import FERPLUS_HEADER, make_ferplus, make_ferplus_folders, pixel_string, write_csv
from eacfer.data.formats import detect_format, load_split
from eacfer.data.formats.ferplus import vote_target

#            neu hap sur sad ang dis fea con unk NF


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        ([6, 0, 0, 2, 2, 0, 0, 0, 0, 0], 0),          # 6 of 10 > half
        ([0, 10, 0, 0, 0, 0, 0, 0, 0, 0], 1),
        ([5, 0, 0, 4, 0, 0, 0, 0, 0, 1], 0),          # the single NF vote is an outlier: 5 of 9 > half
        ([4, 0, 0, 3, 1, 1, 1, 0, 0, 0], 0),          # three single votes removed: 4 of 7 > half
        ([0, 0, 0, 0, 0, 0, 0, 6, 2, 2], 7),          # contempt can win
        ([5, 0, 0, 5, 0, 0, 0, 0, 0, 0], None),       # tie: no strict majority
        ([4, 0, 0, 4, 2, 0, 0, 0, 0, 0], None),       # tie
        ([5, 0, 0, 3, 2, 0, 0, 0, 0, 0], None),       # exactly half is not a majority
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], None),       # every vote an outlier
        ([3, 0, 0, 0, 0, 0, 0, 0, 7, 0], "unknown"),  # unknown wins: dropped
        ([0, 2, 0, 0, 0, 0, 0, 0, 0, 8], "unknown"),  # not a face: dropped
    ],
)
def test_majority_rules(votes, expected):
    target, reason = vote_target(votes, "majority")
    if expected is None:
        assert target is None and reason == "no majority"
    elif expected == "unknown":
        assert target is None and reason == "unknown/NF"
    else:
        one_hot = np.zeros(8)
        one_hot[expected] = 1.0
        np.testing.assert_array_equal(target, one_hot)


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        # top emotions until 75 % of the votes: 6 (60 %), then the tied 2s together (100 %)
        ([6, 0, 0, 2, 2, 0, 0, 0, 0, 0], [0.6, 0, 0, 0.2, 0.2, 0, 0, 0]),
        # the two tied 4s already cover 80 %: the 2 is left out, renormalised over 8 of 10 votes
        ([4, 0, 0, 4, 2, 0, 0, 0, 0, 0], [0.5, 0, 0, 0.5, 0, 0, 0, 0]),
        # single votes are outliers, removed before anything else
        ([7, 1, 1, 0, 0, 0, 0, 0, 0, 1], [1.0, 0, 0, 0, 0, 0, 0, 0]),
        ([3, 3, 3, 0, 0, 0, 0, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 0]),
        # five emotions tied: more than 3 emotions → dropped
        ([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], None),
        # neutral and unknown tied: unknown is left out, neutral alone holds only half → dropped
        ([5, 0, 0, 0, 0, 0, 0, 0, 5, 0], None),
        ([0, 0, 0, 0, 0, 0, 0, 0, 9, 0], None),
    ],
)
def test_probability_rules(votes, expected):
    target, _ = vote_target(votes, "probability")
    if expected is None:
        assert target is None
    else:
        np.testing.assert_allclose(target, expected, atol=1e-12)
        assert target.sum() == pytest.approx(1.0)


def test_vote_target_rejects_wrong_length_and_mode():
    with pytest.raises(ValueError, match="10 vote counts"):
        vote_target([1, 2, 3])
    with pytest.raises(ValueError, match="label mode"):
        vote_target([0] * 10, "multi")


ROWS = [
    ("Training", "fer0000000.png", [8, 0, 0, 2, 0, 0, 0, 0, 0, 0]),   # train 0: Neutral
    ("Training", "fer0000001.png", [0, 6, 4, 0, 0, 0, 0, 0, 0, 0]),   # train 1: Happiness (soft .6/.4)
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),                 # removed by FERPlus: no image name
    ("Training", "fer0000003.png", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),   # tie: dropped (majority)
    ("Training", "fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 0, 10, 0]),  # unknown: dropped
    ("Training", "fer0000005.png", [0, 0, 0, 0, 0, 0, 0, 9, 1, 0]),   # contempt
    ("PublicTest", "fer0000006.png", [0, 0, 7, 3, 0, 0, 0, 0, 0, 0]),  # validation: Surprise
    ("PrivateTest", "fer0000007.png", [0, 0, 0, 0, 9, 0, 0, 0, 0, 1]),  # test: Anger
    ("PrivateTest", "fer0000008.png", [0, 0, 0, 0, 0, 6, 4, 0, 0, 0]),  # test: Disgust
]


@pytest.fixture()
def ferplus(tmp_path):
    return make_ferplus(tmp_path / "FERPlus", ROWS)


def test_csv_pair_splits_labels_and_pixels(ferplus):
    assert detect_format(ferplus) == "ferplus"
    train = load_split(ferplus, "train")
    assert train.class_names == ["Neutral", "Happiness", "Surprise", "Sadness", "Anger", "Disgust", "Fear", "Contempt"]
    assert [s.name for s in train.samples] == ["fer0000000.png", "fer0000001.png", "fer0000005.png"]
    assert train.labels().tolist() == [0, 1, 7]
    assert train.stats["dropped"] == {"no image name": 1, "no majority": 1, "unknown/NF": 1}
    # row i of fer2013.csv has pixel value 10 + i: the vote rows were paired with the right pixel rows
    assert [int(s.pixels[5, 5, 0]) for s in train.samples] == [10, 11, 15]
    assert train.samples[0].pixels.shape == (48, 48, 3) and train.samples[0].pixels.dtype == np.uint8
    assert (train.samples[0].pixels[..., 0] == train.samples[0].pixels[..., 2]).all()  # gray → 3 channels
    val = load_split(ferplus, "validation")
    assert [s.name for s in val.samples] == ["fer0000006.png"] and val.labels().tolist() == [2]
    test = load_split(ferplus, "test")
    assert test.labels().tolist() == [4, 5] and [int(s.pixels[5, 5, 0]) for s in test.samples] == [17, 18]


def test_probability_mode_soft_on_train_majority_on_test(ferplus):
    train = load_split(ferplus, "train", label_mode="probability")
    assert train.label_mode == "probability"
    by_name = {s.name: s for s in train.samples}
    np.testing.assert_allclose(by_name["fer0000001.png"].soft, [0, 0.6, 0.4, 0, 0, 0, 0, 0])
    assert by_name["fer0000001.png"].label == 1
    # the tie [5, 5] is kept in probability mode (both cover 100 %): 0.5 / 0.5
    np.testing.assert_allclose(by_name["fer0000003.png"].soft, [0.5, 0.5, 0, 0, 0, 0, 0, 0])
    test = load_split(ferplus, "test", label_mode="probability")
    assert test.label_mode == "majority" and all(s.soft is None for s in test.samples)


def test_seven_classes_drop_contempt(ferplus):
    train = load_split(ferplus, "train", classes=7, label_mode="probability")
    assert train.class_names[-1] == "Fear" and len(train.class_names) == 7
    assert "fer0000005.png" not in {s.name for s in train.samples}
    assert train.stats["dropped"]["Contempt (7 classes)"] == 1
    assert all(len(s.soft) == 7 for s in train.samples)


def test_file_arguments_are_detected(ferplus):
    assert detect_format(ferplus / "fer2013new.csv") == "ferplus"
    assert detect_format(ferplus / "fer2013.csv") == "fer2013"  # the plain CSV still means FER2013
    assert len(load_split(ferplus / "fer2013new.csv", "train").samples) == 3


def test_folder_export(tmp_path):
    root = make_ferplus_folders(tmp_path / "data", {
        "train": [("fer0000000.png", [8, 0, 0, 2, 0, 0, 0, 0, 0, 0]), ("fer0000001.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10])],
        "validation": [("fer0028710.png", [0, 9, 0, 0, 0, 0, 0, 0, 0, 1])],
        "test": [("fer0032222.png", [0, 0, 0, 8, 0, 0, 0, 0, 2, 0])],
    })
    assert detect_format(root) == "ferplus-folders"
    train = load_split(root, "train")
    assert [s.name for s in train.samples] == ["fer0000000.png"] and train.stats["dropped"] == {"unknown/NF": 1}
    assert load_split(root, "validation").labels().tolist() == [1]
    assert load_split(root, "test").labels().tolist() == [3]
    old = make_ferplus_folders(tmp_path / "old", {"train": [("a.png", [0, 0, 0, 0, 0, 0, 9, 0, 0, 0])]}, box_column=True)
    assert load_split(old, "train").labels().tolist() == [6]


def test_folder_export_bad_rows_are_counted(tmp_path):
    root = make_ferplus_folders(tmp_path / "data", {"train": [("ok.png", [9, 0, 0, 0, 0, 0, 0, 0, 0, 0])]})
    label = root / "FER2013Train" / "label.csv"
    with open(label, "a") as fh:
        fh.write("../../etc/passwd,9,0,0,0,0,0,0,0,0,0\n")   # outside the dataset folder
        fh.write("missing.png,9,0,0,0,0,0,0,0,0,0\n")        # no such image
        fh.write("short.png,9,0,0\n")                        # too few votes
    split = load_split(root, "train")
    assert [s.name for s in split.samples] == ["ok.png"]
    assert len(split.problems) == 3
    assert "outside the dataset folder" in split.problems[0] and "label.csv:2" in split.problems[0]
    assert "image not found" in split.problems[1]
    assert "10 vote counts" in split.problems[2]
    with pytest.raises(ValueError, match="label.csv:2"):
        load_split(root, "train", strict=True)


def test_bad_input_one_line_errors_and_counted_skips(tmp_path):
    root = make_ferplus(tmp_path / "a", ROWS[:2])
    # a malformed pixel string is a counted skip naming file and line
    write_csv(root / "fer2013.csv", ["emotion", "pixels", "Usage"],
              [[0, "1 2 x", "Training"], [0, pixel_string(3), "Training"]])
    split = load_split(root, "train")
    assert len(split.samples) == 1 and split.problems == [f"{root / 'fer2013.csv'}:2: pixels are not integers"]
    # a missing vote column is a one-line error naming the file and the column
    write_csv(root / "fer2013new.csv", [c for c in FERPLUS_HEADER if c != "contempt"], [])
    with pytest.raises(ValueError, match=r"fer2013new.csv: missing column\(s\) contempt"):
        load_split(root, "train", format="ferplus")
    # files of different lengths cannot be paired
    b = make_ferplus(tmp_path / "b", ROWS[:3])
    write_csv(b / "fer2013new.csv", FERPLUS_HEADER, [[u, n, *v] for u, n, v in ROWS[:2]])
    with pytest.raises(ValueError, match="same images in the same order"):
        load_split(b, "train")
    with pytest.raises(ValueError, match="unknown split 'private'"):
        load_split(b, "private")
    with pytest.raises(ValueError, match="label-mode probability needs vote counts"):
        load_split(b / "fer2013.csv", "train", label_mode="probability")
