"""One rule, one place (issue 27): each rule below is written once; these tests fail when two callers drift apart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eacfer.infer.stream import sources


def _touch(p: Path, data: bytes = b"x") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_app_lists_the_photos_eacfer_predict_reads(tmp_path):
    """The desktop app and ``eacfer predict`` see the same photos of a folder: no ``._x.jpg`` AppleDouble files
    (the app's own list kept them), and the same extensions in any case."""
    from eacfer.infer.jobs.photos import collect_inputs
    from eacfer.ui.media import list_images, parse_source

    for name in ("a.jpg", "._a.jpg", "B.PNG", "c.webp", "d.tiff", ".hidden.jpg", "notes.txt", "clip.mp4"):
        _touch(tmp_path / name)
    predict_files = sorted(str(f) for f, _root in collect_inputs([tmp_path]))
    assert [Path(p).name for p in predict_files] == ["B.PNG", "a.jpg", "c.webp", "d.tiff"]
    assert list_images(tmp_path) == predict_files
    assert list(parse_source(str(tmp_path)).paths) == predict_files
    # a single photo: the app browses its folder, starting at it, without the AppleDouble twin
    spec = parse_source(str(tmp_path / "a.jpg"))
    assert spec.kind == "photos" and str(tmp_path / "._a.jpg") not in spec.paths


@pytest.mark.parametrize("text, kind", [
    ("0", "camera"), ("12", "camera"), ("rtsp://cam/stream", "url"), ("srt://host:9000", "url"),
    ("file:///videos/a.mp4", "url"), ("HTTPS://host/live.m3u8", "url"), ("clip.mp4", "file"),
    ("missing/folder/", "file"),
])
def test_source_kind(text, kind):
    assert sources.source_kind(text) == kind
    assert kind in sources.SOURCE_KINDS  # the documented list of kinds names every kind source_kind returns


def test_source_kind_folder_and_list(tmp_path):
    _touch(tmp_path / "list.txt", b"a.mp4\n")
    assert sources.source_kind(tmp_path) == "folder"
    assert sources.source_kind(tmp_path / "list.txt") == "list"
    assert sources.source_kind(tmp_path / "missing.txt") == "file"
    assert sources.source_kind(0) == "camera"


@pytest.mark.parametrize("text", ["3", "srt://host:9000", "rtsp://cam/1", "file:///v/a.mp4"])
def test_app_and_video_command_agree_on_cameras_and_urls(text):
    """``eacfer ui --source X`` and ``eacfer video X`` classify a camera or URL alike (the app knew only six
    URL schemes and called ``srt://…`` a missing file)."""
    from eacfer.ui.media import parse_source as ui_parse

    kind, _target, _live = sources.parse_source(text)
    spec = ui_parse(text)
    assert spec.kind == {"camera": "camera", "url": "video"}[kind]
    assert spec.target == text


def test_video_jobs_and_predict_agree_on_video_files(tmp_path):
    """What counts as a video: the same files for ``eacfer predict`` (videos it points to ``eacfer video``) and
    a ``video`` job over the folder."""
    from eacfer.infer.jobs.photos import count_videos
    from eacfer.infer.jobs.videos import expand_sources

    for name in ("a.mp4", "b.MKV", "c.M4V", "._a.mp4", "d.jpg", "e.mts.txt", "sub/f.webm"):
        _touch(tmp_path / name)
    videos, many = expand_sources([str(tmp_path)])
    assert many and sorted(videos) == sorted(count_videos([tmp_path]))
    assert sorted(Path(v).name for v in videos) == ["a.mp4", "b.MKV", "c.M4V", "f.webm"]


def test_one_iou():
    """The tracker and the wild evaluation use the face finder's IoU (one definition)."""
    import inspect

    from eacfer.infer.detect.base import box_iou
    from eacfer.infer.jobs import wild_eval
    from eacfer.infer.stream import tracking

    assert tracking.box_iou is box_iou
    assert not hasattr(tracking, "iou")
    assert "box_iou(" in inspect.getsource(wild_eval.evaluate_through_detector)


def test_cache_root_order(monkeypatch, tmp_path):
    from eacfer.utils.cache import cache_dir, cache_root

    monkeypatch.setenv("EACFER_CACHE_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "own"
    monkeypatch.delenv("EACFER_CACHE_DIR")
    assert cache_root() == tmp_path / "xdg" / "eacfer"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/xdg")  # invalid by the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "eacfer"
    with pytest.raises(ValueError):
        cache_dir("../escape")


def test_every_cache_honours_xdg_cache_home(monkeypatch, tmp_path):
    """AffectNet crops, decoded training stacks and ONNX exports all live under one root, which follows
    ``$XDG_CACHE_HOME`` when ``$EACFER_CACHE_DIR`` is not set (the crops and stacks ignored it)."""
    from eacfer.data.facecrops import default_cache_dir as crops_dir
    from eacfer.infer.onnx_cache import cache_dir as onnx_dir
    from eacfer.training.fast.cache import default_cache_dir as decoded_dir

    monkeypatch.delenv("EACFER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "xdg" / "eacfer"
    assert crops_dir(tmp_path / "AffectNet", 224, 0.1).parent == root / "affectnet"
    assert onnx_dir() == root / "onnx"
    assert decoded_dir() == root / "decoded"
    monkeypatch.setenv("EACFER_CACHE_DIR", str(tmp_path / "own"))
    assert crops_dir(tmp_path / "AffectNet", 224, 0.1).parent == tmp_path / "own" / "affectnet"
    assert onnx_dir().parent == decoded_dir().parent == tmp_path / "own"


def test_retinaface_export_is_in_the_size_capped_cache(monkeypatch, tmp_path):
    """RetinaFace's ONNX export is an entry of the ONNX cache (found by lookup, counted by the size cap),
    not a file in a sub-folder the cap never sees."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from eacfer.infer import onnx_cache
    from eacfer.infer.detect.retinaface import _ort_session, retinaface_cache_key

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 1)

        def forward(self, x):
            y = self.conv(x).flatten(2).transpose(1, 2)  # (1, anchors, 2)
            return torch.cat([y, y], -1), y, torch.cat([y] * 5, -1)

    monkeypatch.setenv("EACFER_CACHE_DIR", str(tmp_path / "cache"))
    weights = _touch(tmp_path / "mnet.pth", b"weights")
    _ort_session(Net(), weights, threads=1)
    import hashlib

    key = retinaface_cache_key(hashlib.sha256(b"weights").hexdigest()[:16])
    entry = onnx_cache.lookup(onnx_cache.cache_dir(), key)
    assert entry is not None and entry.parent == onnx_cache.cache_dir()
    assert onnx_cache.evict(onnx_cache.cache_dir(), 0) == [entry]  # the cap sees (and can evict) it


def test_video_and_predict_record_the_model_alike(monkeypatch):
    """``batch.model_record`` (job identities, summaries) repeats the backbone, classes, sizes and backend of
    ``Predictor.model_record`` at its top level: the values come from that one builder."""
    from eacfer.infer.jobs.photos import model_record

    class P:
        detector_name, detector_mode, score_threshold, max_faces, backend = "mediapipe", "auto", 0.5, 4, "onnx"

        def model_record(self, model_file=None):
            return {"name": "m.pt", "sha256": "0" * 64, "backbone": "resnet18", "classes": ["a", "b"],
                    "input_size": 112, "face_size": 100, "backend": "onnx-int8", "precision": "int8"}

    rec = model_record(P(), None)
    assert rec["model"] == P().model_record()
    assert {k: rec[k] for k in ("backbone", "classes", "input_size", "face_size", "backend")} == {
        "backbone": "resnet18", "classes": ["a", "b"], "input_size": 112, "face_size": 100, "backend": "onnx-int8"}
    assert list(rec)[:6] == ["model", "backbone", "classes", "input_size", "face_size", "backend"]


def test_ray_and_local_jobs_share_the_annotated_writer():
    import inspect

    from eacfer.infer.jobs import photos as batch
    from eacfer.infer.jobs import ray_jobs as batch_ray

    assert batch_ray.save_annotated is batch.save_annotated
    assert "def save_annotated" not in inspect.getsource(batch_ray)


def test_no_second_copy_of_the_rules():
    """Source-level guard: the rules above are not re-declared elsewhere in the package."""
    root = Path(sources.__file__).resolve().parents[2]
    offenders = []
    for p in root.rglob("*.py"):
        text = p.read_text(encoding="utf-8")
        rel = p.relative_to(root).as_posix()
        if rel != "data/imageio.py" and ("IMAGE_EXTENSIONS = " in text or "IMAGE_EXTENSIONS: " in text):
            offenders.append(rel)
        if rel != "infer/stream/sources.py" and "VIDEO_EXTENSIONS = " in text:
            offenders.append(rel)
        if rel != "utils/cache.py" and ('environ.get("EACFER_CACHE_DIR")' in text or "XDG_CACHE_HOME\")" in text):
            offenders.append(rel)
    assert offenders == []
    assert os.path.exists(root / "utils" / "cache.py")
