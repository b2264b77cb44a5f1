"""``eacfer bench compare`` (issue 31): the user's EAC models next to the bundled starter model on one test set.

Specification: every model is evaluated on the same split, classes matched by name across datasets (a class the
model lacks is scored without those images, and the table says how many images each model was scored on); the
starter model is included unless --no-starter; outputs stay inside --out.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from dataset_makers import make_ferplus
from eacfer.bench.baseline import compare_models
from eacfer.commands.cli import main
from inference_testutils import save_random_model

NEUTRAL, HAPPY, CONTEMPT = ([10, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],
                            [0, 0, 0, 0, 0, 0, 0, 10, 0, 0])


def _ferplus(root: Path) -> Path:
    rows = [("PrivateTest", f"fer{i:07d}.png", votes) for i, votes in
            enumerate([NEUTRAL, HAPPY, NEUTRAL, HAPPY, CONTEMPT, CONTEMPT, HAPPY])]
    rows += [("Training", f"fer{i:07d}.png", HAPPY) for i in range(7, 10)]
    return make_ferplus(root, rows)


def test_starter_next_to_an_eac_model_cross_dataset(tmp_path) -> None:
    data = _ferplus(tmp_path / "ferplus")
    eac = save_random_model(tmp_path / "eac_run" / "model.pt")
    out = tmp_path / "cmp"
    rows = compare_models(data, [str(eac)], out, progress=False, device="cpu", classes=8)
    assert [r["model"] for r in rows] == ["starter", "eac_run_model"]
    starter, mine = rows
    assert starter["backbone"] == "mini_xception" and "FER2013" in starter["trained_on"]
    # 7 PrivateTest faces, 2 of them Contempt: neither 7-class model can predict it, so both are scored on 5
    assert starter["n"] == mine["n"] == 5
    assert "Contempt" not in starter["classes_scored"].split(",")
    for r in rows:
        preds = list(csv.DictReader(open(out / r["model"] / "predictions.csv")))
        assert len(preds) == r["n"]
        assert abs(sum(p["truth"] == p["prediction"] for p in preds) / r["n"] - r["accuracy"]) < 1e-9
    table = (out / "compare.md").read_text()
    assert "| starter | mini_xception |" in table and "| eac_run_model | mobilenet_v2 |" in table
    assert json.loads((out / "compare.json").read_text())["rows"] == rows
    assert json.loads((out / "bench_meta.json").read_text())["kind"] == "compare"
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


def test_cli_compare_and_no_starter(tmp_path, capsys) -> None:
    data = _ferplus(tmp_path / "ferplus")
    eac = save_random_model(tmp_path / "m.pt")
    rc = main(["bench", "compare", "--data", str(data), "--checkpoints", str(eac), "--no-starter", "--device", "cpu",
               "--out", str(tmp_path / "o"), "-q"])
    out = capsys.readouterr().out
    assert rc == 0 and "| starter |" not in out and "mobilenet_v2" in out
    rc = main(["bench", "compare", "--data", str(data), "--device", "cpu", "--out", str(tmp_path / "o2"), "-q"])
    assert rc == 0 and "| starter | mini_xception |" in capsys.readouterr().out


def test_missing_model_file_is_one_line_error(tmp_path, capsys) -> None:
    data = _ferplus(tmp_path / "ferplus")
    rc = main(["bench", "compare", "--data", str(data), "--checkpoints", str(tmp_path / "nope.pt"),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "nope.pt" in err and "not found" in err
