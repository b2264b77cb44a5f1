"""``--ray``: the same job on a local Ray instance (``ray.init(num_cpus=2)``, no network) gives the rows of
the one-machine path, resumes the same way, and a missing Ray is a one-line error naming ``eacfer[ray]``."""

from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from eacfer.commands.cli import main
from inference_testutils import FACE, compose_faces, make_clip

pytest_plugins = ["inference_fixtures"]


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _same_rows(a: list[dict[str, str]], b: list[dict[str, str]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert {k: v for k, v in x.items() if not k.startswith("p_")} == \
            {k: v for k, v in y.items() if not k.startswith("p_")}
        for k in x:
            if k.startswith("p_") and x[k]:
                assert abs(float(x[k]) - float(y[k])) <= 2e-5, (k, x[k], y[k])


def test_missing_ray_is_one_line_naming_the_extra(model_pt, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as when not installed
    assert main(["predict", str(FACE), "--checkpoint", str(model_pt), "--out", str(tmp_path / "o"), "--ray"]) == 2
    err = capsys.readouterr().err
    assert "eacfer[ray]" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def local_ray(inference_cache):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'eacfer[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is part of the extra")
    # started after the ONNX cache is set, so the actors (child processes) share it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(face_rgb, tmp_path_factory):
    d = tmp_path_factory.mktemp("ray_photos")
    Image.fromarray(face_rgb).save(d / "astronaut.jpg")
    Image.fromarray(compose_faces(face_rgb, 2)).save(d / "two.jpg")
    (d / "sub").mkdir()
    Image.fromarray(np.full((60, 90, 3), 70, np.uint8)).save(d / "sub" / "blank.png")
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(d / f"noise{i}.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    return d


def test_ray_predict_matches_the_local_path_and_resumes(local_ray, model_pt, photos, tmp_path):
    from eacfer.infer.jobs.photos import predict_paths
    from eacfer.infer.jobs.ray_jobs import predict_paths_ray
    from eacfer.infer.predictor import Predictor

    with Predictor.from_checkpoint(model_pt, device="cpu") as p:
        ref = predict_paths(p, [photos], tmp_path / "local", progress=False, model_file=model_pt)
    opts = {"device": "cpu", "detector": "mediapipe"}
    s = predict_paths_ray(model_pt, [photos], tmp_path / "ray", progress=False, actors=2, block_files=3, predictor_options=opts)
    assert s["ray"]["actors"] == 2 and s["processed"] == ref["processed"] == 9
    for k in ("files", "images", "faces", "no_face", "errors"):
        assert s[k] == ref[k], k
    assert ref["faces"] == 3 and ref["errors"] == 1
    _same_rows(_read_csv(tmp_path / "ray" / "predictions.csv"), _read_csv(tmp_path / "local" / "predictions.csv"))
    # shards: each block's rows as received; together they are the merged file's rows
    shard_rows = [r for p in sorted((tmp_path / "ray" / "shards").glob("part-*.csv")) for r in _read_csv(p)]
    assert len(list((tmp_path / "ray" / "shards").glob("part-*.csv"))) == 3
    _same_rows(shard_rows, _read_csv(tmp_path / "ray" / "predictions.csv"))
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["model"]["sha256"] == ref["model"]["sha256"]
    # resumable the same way: a changed file is redone, the rest skipped (on Ray, and by the local path)
    os.utime(photos / "noise0.png", ns=(1, 10**18))
    s2 = predict_paths_ray(model_pt, [photos], tmp_path / "ray", progress=False, actors=1, predictor_options=opts)
    assert (s2["skipped"], s2["processed"], s2["files"]) == (8, 1, 9)
    with Predictor.from_checkpoint(model_pt, device="cpu") as p:
        s3 = predict_paths(p, [photos], tmp_path / "ray", progress=False, model_file=model_pt)
    assert (s3["skipped"], s3["processed"]) == (9, 0)
    rows = _read_csv(tmp_path / "ray" / "predictions.csv")
    assert len(rows) == len(_read_csv(tmp_path / "local" / "predictions.csv"))  # no file's rows twice


def test_ray_videos_one_folder_each(local_ray, model_pt, face_rgb, tmp_path):
    from eacfer.infer.jobs.ray_jobs import run_videos_ray

    a = make_clip(tmp_path / "a.mp4", face_rgb, frames=5, size=(160, 120))
    b = make_clip(tmp_path / "b.mp4", face_rgb, frames=4, size=(160, 120))
    (tmp_path / "bad.mp4").write_bytes(os.urandom(2000))
    out = tmp_path / "out"
    s = run_videos_ray(model_pt, [a, b, tmp_path / "bad.mp4"], out, progress=False, actors=2,
                       video_kw={"write_video": False, "every": 1},
                       predictor_options={"device": "cpu", "detector": "none"})
    assert (s["videos"], s["done"], s["failed"]) == (3, 2, 1)
    with open(out / "index.csv", newline="", encoding="utf-8") as fh:
        idx = {os.path.basename(r["source"]): r for r in csv.DictReader(fh)}
    assert idx["a.mp4"]["frames"] == "5" and idx["b.mp4"]["frames"] == "4" and idx["bad.mp4"]["status"] == "failed"
    assert len(_read_csv(out / idx["a.mp4"]["folder"] / "frames.csv")) == 5
    s2 = run_videos_ray(model_pt, [a, b, tmp_path / "bad.mp4"], out, progress=False, actors=1,
                        video_kw={"write_video": False, "every": 1},
                        predictor_options={"device": "cpu", "detector": "none"})
    assert s2["skipped"] == 3 and s2["frames_this_run"] == 0
