"""``eacfer bench efficiency``: FLOP/parameter counts of the paper's backbones and the whole measurement flow."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from eacfer import create_model
from eacfer.bench.efficiency import count_flops, count_params
from eacfer.commands.cli import main


@pytest.mark.parametrize(("backbone", "params_m", "gflops"), [
    ("resnet50_msceleb", 23.52, 7.71),  # Caffe-style ResNet-50 + 7-class head, 224²
    ("mobilenet_v2", 2.23, 0.60),
])
def test_flops_and_params_of_the_paper_backbones(backbone: str, params_m: float, gflops: float) -> None:
    torch.set_num_threads(1)
    net = create_model(backbone, num_classes=7)
    assert round(count_params(net) / 1e6, 2) == params_m
    assert round(count_flops(net, 224) / 1e9, 2) == gflops


def test_flops_are_two_per_mac() -> None:
    # a single 3→8 3×3 convolution on 10×10 (padding 1) plus a linear layer: MACs known by hand
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 10 * 10, 7, bias=False))
    macs = 8 * 10 * 10 * 3 * 3 * 3 + 800 * 7
    assert count_flops(net, 10) == 2 * macs
    assert count_params(net) == 8 * 27 + 800 * 7


def test_efficiency_bench_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str], synth_rafdb: Path) -> None:
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo

    torch.set_num_threads(1)
    ckpt = tmp_path / "run" / "model.pt"
    net = create_model("mobilenet_v2")
    save_model(ckpt, net, ModelInfo("mobilenet_v2", list(RAFDB_CLASSES), 32, list(IMAGENET_MEAN), list(IMAGENET_STD),
                                    metrics={"last5_mean_accuracy": 0.8125, "best_accuracy": 0.85},
                                    train_config={"data": str(synth_rafdb), "format": "rafdb"}))
    out = tmp_path / "eff"
    argv = ["-q", "bench", "efficiency", "--backbones", "mobilenet_v2", "--checkpoints", str(ckpt), "--device", "cpu",
            "--image-size", "32", "--batch", "4", "--iters", "2", "--warmup", "1", "--video-frames", "4",
            "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out / "efficiency.csv", encoding="utf-8")))
    assert [r["backbone"] for r in rows] == ["mobilenet_v2", "mobilenet_v2"]
    bare, trained = rows
    assert float(bare["params_m"]) == pytest.approx(count_params(net) / 1e6)
    assert float(bare["gflops"]) == pytest.approx(count_flops(net, 32) / 1e9)
    for r in rows:
        for key in ("torch_cpu_b1_ms", "torch_cpu_batch_ms_per_face", "ort_cpu_b1_ms", "ort_cpu_batch_ms_per_face",
                    "pt_mb", "onnx_mb", "video_fps"):
            assert float(r[key]) > 0, key
        for kind in ("torch", "ort"):
            assert 0 < float(r[f"{kind}_cpu_b1_min_ms"]) <= float(r[f"{kind}_cpu_b1_ms"])
        assert r["cuda_amp_b1_ms"] == "" and r["cuda_amp_dtype"] == ""  # CPU run: not measured, not made up
        assert r["video_fps_kind"].startswith("end-to-end")
        assert int(r["video_frames_with_face"]) >= 3  # the synthetic clip really shows a detectable face
        assert r["image_size"] == "32" and r["throughput_batch"] == "4" and r["threads"] == "1"
    assert bare["accuracy"] == "" and bare["model_source"].startswith("backbone")
    assert float(trained["accuracy"]) == pytest.approx(81.25) and trained["accuracy_metric"] == "last5_mean_accuracy"
    assert float(trained["pt_mb"]) == pytest.approx(ckpt.stat().st_size / 1e6)
    assert float(bare["published_accuracy"]) == 86.47 and "eac_repo" in bare["published_source"]
    md = (out / "efficiency.md").read_text(encoding="utf-8")
    measured, published = md.split("## Published (not measured here)")
    assert "## Measured here" in measured and "81.25 (last5_mean_accuracy; synthetic data" in measured
    assert trained["accuracy_data"].startswith("synthetic data") and bare["accuracy_data"] == ""
    assert "POSTER++" not in measured and "POSTER++" in published and "43.7" in published
    assert "i7-12700K" in published and "not comparable" in published
    assert (out / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"
    meta = json.loads((out / "bench_meta.json").read_text())
    assert meta["command"].startswith("eacfer bench efficiency") and "--checkpoints" in meta["command"]
    # the recorded command can be pasted: no internal --argv, and it parses with the same options
    import shlex

    from eacfer.commands.cli import build_parser

    assert "--argv" not in meta["command"]
    again = build_parser().parse_args(shlex.split(meta["command"])[1:])
    assert again.out == str(out) and again.checkpoints == [str(ckpt)]
    assert meta["machine"]["cpu"] and meta["machine"]["torch"] == torch.__version__


def test_efficiency_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "efficiency", "--backbones", "no_such_net", "--out", str(tmp_path)]) == 2
    assert "no_such_net" in capsys.readouterr().err
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["bench", "efficiency", "--checkpoints", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "broken.pt" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "efficiency", "--backbones", "mobilenet_v2", "--iters", "0", "--out", str(tmp_path)]) == 2


def test_accuracy_plot_names_the_data_and_its_labels_do_not_overlap(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """A synthetic-data accuracy is not drawn as a RAF-DB result, and the published models' names are legible."""
    from eacfer.bench import plots
    from eacfer.bench.published import load_published

    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or Path(path))
    row = {"name": "mobilenet_v2", "params_m": 2.2, "gflops": 0.3, "image_size": 112, "ort_cpu_b1_ms": 3.0,
           "accuracy": 41.0, "accuracy_metric": "last5_mean_accuracy",
           "accuracy_data": "synthetic data (eacfer synth), not RAF-DB"}
    near_poster = {"name": "resnet50_msceleb", "params_m": 23.5, "gflops": 7.7, "image_size": 224,
                   "ort_cpu_b1_ms": 30.0, "published_accuracy": 89.0}  # its label once ran into POSTER++'s
    plots.plot_accuracy_vs_cost([row, near_poster], load_published(), tmp_path / "p.png")
    (fig,) = figs
    fig.canvas.draw()
    ax_lat, ax_par = fig.axes[:2]
    assert not ax_lat.get_ylabel().startswith("RAF-DB")  # the axis holds other data too
    assert any("synthetic" in t.get_text() for t in ax_lat.texts)  # the measured point says what data it is
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax_par.texts if t.get_text().strip()]
    if ax_par.get_legend() is not None:
        labels += [t for t in ax_par.get_legend().get_texts()]
    names = " ".join(t.get_text() for t in labels)
    assert "POSTER 92.05" in names and "APViT 91.98" in names  # 0.07 points apart: the crowded pair
    boxes = [t.get_window_extent(renderer) for t in labels]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (labels[i].get_text(), labels[j].get_text())
