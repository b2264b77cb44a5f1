"""Cross-dataset evaluation: classes matched by name through the synonym table, model-only classes out of the
argmax, dataset-only classes skipped and reported, the mapping in metrics.json; FER2013 CSV given as --data;
plus one FERPlus training run with soft targets and the balanced sampler, and label-problem counting (#19)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from dataset_makers import make_ferplus, pixel_string, write_csv
from eacfer.constants import RAFDB_CLASSES
from eacfer.data.classes import canonical_class, match_classes
from eacfer.data.formats import FERPLUS_CLASSES
from eacfer.data.formats.fer2013 import FER2013_CLASSES


def test_synonym_table_and_matching():
    assert [canonical_class(c) for c in FER2013_CLASSES] == \
        ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral"]
    m = match_classes(RAFDB_CLASSES, FERPLUS_CLASSES)
    assert m.dataset_only == ("Contempt",) and m.model_only == ()
    assert m.to_dict()["matched"]["Happiness"] == "Happiness"
    assert [RAFDB_CLASSES[j] for _, j in m.shared] == ["Neutral", "Happiness", "Surprise", "Sadness", "Anger",
                                                         "Disgust", "Fear"]
    back = match_classes(FERPLUS_CLASSES, RAFDB_CLASSES)
    assert back.model_only == ("Contempt",) and back.dataset_only == () and not back.identical
    assert match_classes(RAFDB_CLASSES, RAFDB_CLASSES).identical
    with pytest.raises(ValueError, match="no class in common"):
        match_classes(["x", "y"], RAFDB_CLASSES)


def _biased_model(path, class_names, bias):
    """A model that always predicts by its fc bias (zero weights): what it predicts is known in advance."""
    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.modelinfo import ModelInfo

    net = create_model("resnet18", num_classes=len(class_names))
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    save_model(path, net, ModelInfo("resnet18", list(class_names), 32, [0.5] * 3, [0.5] * 3))
    return path


def _fer2013(path):
    rows = [[e, pixel_string(20 * e), "PublicTest"] for e in range(7) for _ in range(2)]
    rows += [[3, pixel_string(5), "Training"]]
    return write_csv(path, ["emotion", "pixels", "Usage"], rows)


def test_rafdb_model_on_fer2013_csv_given_as_data(tmp_path):
    from eacfer.commands.cli import main

    bias = [0.0] * 7
    bias[RAFDB_CLASSES.index("Happiness")] = 5.0
    model = _biased_model(tmp_path / "raf.pt", RAFDB_CLASSES, bias)
    csv_path = _fer2013(tmp_path / "fer2013.csv")
    assert main(["eval", "--data", str(csv_path), "--checkpoint", str(model), "--out", str(tmp_path / "ev"),
                 "--device", "cpu"]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["format"] == "fer2013" and m["n"] == 14
    assert m["class_names"] == list(FER2013_CLASSES)  # the dataset's names, in its order
    assert m["accuracy"] == pytest.approx(2 / 14)      # only the 2 Happy rows are right
    assert m["per_class"]["Happy"] == 1.0 and m["per_class"]["Angry"] == 0.0
    assert m["class_mapping"]["matched"] == {"Angry": "Anger", "Disgust": "Disgust", "Fear": "Fear",
                                             "Happy": "Happiness", "Sad": "Sadness", "Surprise": "Surprise",
                                             "Neutral": "Neutral"}
    assert m["class_mapping"]["dataset_only_skipped"] == [] and m["class_mapping"]["model_only_excluded_from_argmax"] == []
    rows = (tmp_path / "ev" / "predictions.csv").read_text().splitlines()
    assert rows[1].startswith("fer2013_line00002,Angry,Happy,")  # CSV samples named by their line


def test_rafdb_model_on_ferplus_skips_contempt(tmp_path):
    from eacfer.training.evaluation import evaluate_checkpoint

    bias = [0.0] * 7
    bias[RAFDB_CLASSES.index("Neutral")] = 5.0
    model = _biased_model(tmp_path / "raf.pt", RAFDB_CLASSES, bias)
    votes = {"neutral": [9, 0, 0, 0, 0, 0, 0, 0, 0, 1], "happy": [0, 9, 0, 0, 0, 0, 0, 0, 0, 1],
             "contempt": [0, 0, 0, 0, 0, 0, 0, 8, 2, 0]}
    rows = [("PrivateTest", f"fer{i:07d}.png", votes[k]) for i, k in
            enumerate(["neutral", "neutral", "happy", "contempt", "contempt", "contempt"])]
    root = make_ferplus(tmp_path / "FERPlus", [("Training", "fer9.png", votes["happy"]), *rows])
    m = evaluate_checkpoint(model, root, out_dir=tmp_path / "ev", device="cpu", progress=False)
    assert m["split"] == "test" and m["format"] == "ferplus"
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3)
    assert m["class_mapping"]["dataset_only_skipped"] == ["Contempt"]
    assert m["class_mapping"]["skipped_images_of_dataset_only_classes"] == {"Contempt": 3}
    assert "Contempt" not in m["class_names"] and len(m["class_names"]) == 7
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["class_mapping"] == m["class_mapping"]


def test_model_only_class_is_out_of_the_argmax(tmp_path, synth_rafdb):
    from eacfer.training.evaluation import evaluate_checkpoint

    bias = [0.0] * 8
    bias[FERPLUS_CLASSES.index("Contempt")] = 9.0   # would win every image ...
    bias[FERPLUS_CLASSES.index("Sadness")] = 4.0    # ... so without it, Sadness does
    model = _biased_model(tmp_path / "ferplus.pt", FERPLUS_CLASSES, bias)
    m = evaluate_checkpoint(model, synth_rafdb, out_dir=tmp_path / "ev", device="cpu", progress=False)
    assert m["class_mapping"]["model_only_excluded_from_argmax"] == ["Contempt"]
    assert m["class_names"] == list(RAFDB_CLASSES)
    cm = np.array(m["confusion"])
    assert cm[:, RAFDB_CLASSES.index("Sadness")].sum() == m["n"]  # every prediction is Sadness
    rows = (tmp_path / "ev" / "predictions.csv").read_text().splitlines()
    assert "p_Contempt" not in rows[0] and all(",Sadness," in r for r in rows[1:])


def test_eval_split_choice_and_unknown_split(tmp_path):
    from eacfer.training.evaluation import evaluate_checkpoint

    model = _biased_model(tmp_path / "m.pt", FERPLUS_CLASSES, [1.0] + [0.0] * 7)
    rows = [("Training", "a.png", [9, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            ("PublicTest", "b.png", [9, 0, 0, 0, 0, 0, 0, 0, 0, 1]), ("PublicTest", "c.png", [0, 9, 0, 0, 0, 0, 0, 0, 0, 1]),
            ("PrivateTest", "d.png", [9, 0, 0, 0, 0, 0, 0, 0, 0, 1])]
    root = make_ferplus(tmp_path / "F", rows)
    assert evaluate_checkpoint(model, root, split="validation", device="cpu", progress=False)["n"] == 2
    assert evaluate_checkpoint(model, root, device="cpu", progress=False)["n"] == 1  # test = PrivateTest
    with pytest.raises(ValueError, match="unknown split 'test-private'"):
        evaluate_checkpoint(model, root, split="test-private", device="cpu", progress=False)


def test_ferplus_training_with_soft_targets_and_balanced_sampler(tmp_path):
    from eacfer.training.trainer import TrainConfig, train

    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        k = i % 3
        votes = [0] * 10
        votes[k], votes[(k + 1) % 8] = 7, 3  # soft targets 0.7 / 0.3
        rows.append(("Training" if i < 18 else "PrivateTest", f"fer{i:07d}.png", votes))
    rows.append(("Training", "fer0000099.png", [0] * 9 + [10]))  # not a face: dropped and counted
    pixels = [" ".join(str(int(v)) for v in rng.integers(0, 256, 48 * 48)) for _ in rows]
    root = make_ferplus(tmp_path / "F", rows, pixels=pixels)
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "run"), backbone="resnet18", epochs=1, batch_size=8,
                      image_size=32, workers=0, device="cpu", progress=False, tensorboard=False,
                      label_mode="probability", sampler="balanced")
    summary = train(cfg)
    assert summary["finished"] and 0.0 <= summary["final_accuracy"] <= 1.0
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "label_mode: probability" in saved and "sampler: balanced" in saved and "format: ferplus" in saved
    import yaml

    assert yaml.safe_load(saved)["dropped_rows"] == {"train": {"unknown/NF": 1}, "test": {}}
    with pytest.raises(ValueError, match="needs --label-mode majority"):
        TrainConfig(data=str(root), out=str(tmp_path / "r2"), label_mode="probability", noise_rate=0.2).validate()


def test_one_malformed_line_is_one_problem_and_untrained_classes_warn(tmp_path, synth_rafdb, caplog):
    import shutil

    from eacfer.training.config import TrainConfig
    from eacfer.training.run_data import build_datasets

    d = tmp_path / "raf"
    shutil.copytree(synth_rafdb, d)
    labels = d / "EmoLabel" / "list_patition_label.txt"
    lines = labels.read_text().splitlines()
    lines += ["train_99999.jpg happy", "test_99999.jpg 9"]  # two problems
    # drop every training image of Fear: the class is then only in the test split
    fear = str(RAFDB_CLASSES.index("Fear") + 1)
    lines = [ln for ln in lines if not (ln.startswith("train_") and ln.split()[1] == fear)]
    labels.write_text("\n".join(lines) + "\n")
    cfg = TrainConfig(data=str(d), out=str(tmp_path / "o"), backbone="resnet18", image_size=32, workers=0,
                      progress=False)
    with caplog.at_level(logging.WARNING):
        data = build_datasets(cfg)
    assert len(data.problems) == 2
    warned = [r.getMessage() for r in caplog.records]
    for line_no in (len(lines) - 1, len(lines)):
        assert sum(f"list_patition_label.txt:{line_no}:" in w for w in warned) == 1, warned
    assert any("'Fear' has test images but no training examples" in w for w in warned)


def test_bad_affectnet_list_is_a_one_line_cli_error(tmp_path, capsys):
    from dataset_makers import AFFECTNET_HEADER, make_affectnet
    from eacfer.commands.cli import main

    root = make_affectnet(tmp_path / "A", [("0/a.jpg", 1, 1, 5, 5, 0)], [("0/a.jpg", 1, 1, 5, 5, 0)])
    write_csv(root / "Manually_Annotated_file_lists" / "validation.csv",
              [c for c in AFFECTNET_HEADER if c != "expression"], [["0/a.jpg", 1, 1, 5, 5, "", 0, 0]])
    model = _biased_model(tmp_path / "m.pt", RAFDB_CLASSES, [0.0] * 7)
    assert main(["eval", "--data", str(root), "--checkpoint", str(model), "--out", str(tmp_path / "ev"),
                 "--device", "cpu", "--crop-cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "validation.csv: missing column(s) expression" in err[-1] and "Traceback" not in "\n".join(err)


def test_new_options_reach_the_config_and_the_bench(tmp_path):
    from eacfer.bench.grid import GridCell
    from eacfer.bench.noisy import make_config
    from eacfer.commands.cli import build_parser
    from eacfer.commands.train import config_from_args
    from eacfer.training.config import TrainConfig

    csv_path = _fer2013(tmp_path / "fer2013.csv")
    TrainConfig(data=str(csv_path), out=str(tmp_path / "o"), backbone="resnet18").validate()  # a CSV as --data
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--backbone", "resnet18", "--classes", "7",
                                      "--label-mode", "probability", "--sampler", "balanced", "--crop-cache", "cc"])
    cfg = config_from_args(args)
    assert (cfg.classes, cfg.label_mode, cfg.sampler, cfg.crop_cache) == (7, "probability", "balanced", "cc")
    cell = make_config(GridCell("resnet18", "ce", "n20", 0.2), str(tmp_path), tmp_path / "r",
                       {"classes": 7, "sampler": "balanced"}, {}, 0)
    assert (cell.classes, cell.sampler, cell.noise_rate) == (7, "balanced", 0.2)


def test_large_sets_are_decoded_per_item(tmp_path, synth_rafdb, monkeypatch):
    from eacfer.training import run_data
    from eacfer.training.config import TrainConfig

    cfg = TrainConfig(data=str(synth_rafdb), out=str(tmp_path / "o"), backbone="resnet18", image_size=32, workers=0,
                      progress=False)
    monkeypatch.setattr(run_data, "_MEMORY_CACHE_BYTES", 1000)  # 84 images of 48x48x3 exceed it
    data = run_data.build_datasets(cfg)
    assert data.train.cache is False and data.test.cache is False
    assert data.train[0][0][0].shape == (3, 32, 32)  # still usable: decoded on access


def test_a_broken_image_is_warned_once(tmp_path, synth_rafdb, caplog):
    import shutil

    from eacfer.training.config import TrainConfig
    from eacfer.training.run_data import build_datasets

    d = tmp_path / "raf"
    shutil.copytree(synth_rafdb, d)
    victim = sorted((d / "Image" / "aligned").glob("train_*"))[0]
    victim.write_bytes(b"not an image")
    cfg = TrainConfig(data=str(d), out=str(tmp_path / "o"), backbone="resnet18", image_size=32, workers=0,
                      progress=False)
    with caplog.at_level(logging.WARNING):
        data = build_datasets(cfg)
    assert len(data.train.skipped) == 1
    assert sum(victim.name in r.getMessage() for r in caplog.records) == 1
