"""Face detectors on a real public-domain face (NASA astronaut portrait) and composed images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eacfer.infer.detect import Detection, FaceDetector, blazeface, create_detector, list_detectors

FIXTURE = Path(__file__).parents[2] / "fixtures" / "faces" / "astronaut.jpg"
# Face region of the 512×512 portrait (checked by eye): forehead to chin, cheek to cheek.
FACE_CENTER = (224.0, 120.0)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(FIXTURE).convert("RGB"))


@pytest.fixture(scope="module")
def full():
    det = create_detector("mediapipe", mode="full")
    yield det
    det.close()


@pytest.fixture(scope="module")
def short():
    det = create_detector("mediapipe", mode="short")
    yield det
    det.close()


def _group_photo(face: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Four head-and-shoulders copies at different scales on a gradient, like a small group photo."""
    head = Image.fromarray(face).crop((110, 10, 340, 260))  # 230×250
    canvas = np.zeros((600, 800, 3), np.uint8)
    canvas[:] = np.linspace(40, 220, 800)[None, :, None].astype(np.uint8)
    tiles = []
    for x, y, hh in [(20, 20, 300), (420, 40, 240), (60, 360, 200), (480, 380, 170)]:
        ww = round(230 * hh / 250)
        canvas[y : y + hh, x : x + ww] = np.asarray(head.resize((ww, hh)))
        tiles.append((x, y, ww, hh))
    return canvas, tiles


def _center(d: Detection) -> tuple[float, float]:
    x, y, w, h = d.box
    return x + w / 2, y + h / 2


def test_registry_names_and_errors():
    assert list_detectors() == ["mediapipe", "mediapipe-both", "mediapipe-short", "mediapipe-full", "retinaface",
                                "haar", "none"]
    # the error lists every name that works, "none" and the short/full/both variants included
    with pytest.raises(ValueError, match=r"unknown face detector 'dlib'; known detectors: mediapipe, mediapipe-both, "
                                         r"mediapipe-short, mediapipe-full, retinaface, haar, none$"):
        create_detector("dlib")
    with pytest.raises(ValueError, match="unknown detector mode"):
        create_detector("mediapipe", mode="far")
    with pytest.raises(ValueError, match="score_threshold"):
        create_detector("mediapipe", score_threshold=1.5)


@pytest.mark.parametrize("which", ["full", "short"])
def test_real_face_found(which, astronaut, request):
    det = request.getfixturevalue(which)
    assert isinstance(det, FaceDetector)
    faces = det.detect(astronaut)
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.6
    x, y, w, h = f.box
    cx, cy = _center(f)
    assert abs(cx - FACE_CENTER[0]) < 25 and abs(cy - FACE_CENTER[1]) < 25
    assert 70 < w < 150 and 70 < h < 150
    assert f.keypoints is not None and f.keypoints.shape == (6, 2)
    kp = f.keypoints
    eyes_y = max(kp[0, 1], kp[1, 1])
    assert eyes_y < kp[2, 1] < kp[3, 1]  # eyes above nose above mouth
    assert kp[0, 0] < kp[1, 0]  # subject's right eye is on the image left
    # all keypoints inside (or very near) the box
    assert np.all(kp[:, 0] > x - 10) and np.all(kp[:, 0] < x + w + 10)
    assert np.all(kp[:, 1] > y - 10) and np.all(kp[:, 1] < y + h + 10)


def test_full_range_decoder_matches_mediapipe_face_detector(astronaut):
    """Our numpy decoder, run on the short-range model, must agree with MediaPipe's own FaceDetector."""
    from eacfer.infer.detect.mediapipe_backend import SHORT_RANGE_FILE, MediaPipeRaw, MediaPipeShortRange

    with MediaPipeRaw(0.6, spec=blazeface.SHORT_RANGE, model_file=SHORT_RANGE_FILE) as ours:
        a = ours.detect(astronaut)
    with MediaPipeShortRange(0.6) as reference:
        b = reference.detect(astronaut)
    assert len(a) == len(b) == 1
    assert np.allclose(a[0].box, b[0].box, atol=6)
    assert np.allclose(a[0].keypoints, b[0].keypoints, atol=8)
    assert abs(a[0].score - b[0].score) < 0.05


def test_group_photo_all_faces_full_range(astronaut, full):
    canvas, tiles = _group_photo(astronaut)
    faces = full.detect(canvas)
    assert len(faces) == len(tiles) == 4
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    for x, y, w, h in tiles:  # exactly one face centred in each pasted tile
        inside = [f for f in faces if x <= _center(f)[0] <= x + w and y <= _center(f)[1] <= y + h]
        assert len(inside) == 1


def test_min_face_filters_small_faces(astronaut):
    canvas, _ = _group_photo(astronaut)
    with create_detector("mediapipe-full", min_face=100) as det:
        faces = det.detect(canvas)
    assert 1 <= len(faces) < 4
    assert all(min(f.box[2], f.box[3]) >= 100 for f in faces)


@pytest.mark.parametrize("which", ["full", "short"])
def test_no_face_images(which, request):
    det = request.getfixturevalue(which)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    gradient = np.broadcast_to(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], (360, 640, 3)).copy()
    checker = (((np.indices((360, 640)).sum(0) // 40) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)
    for img in (noise, gradient, checker, np.zeros((64, 64, 3), np.uint8)):
        assert det.detect(img) == []


def test_detect_validates_input(full):
    with pytest.raises(ValueError, match="H×W×3"):
        full.detect(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="H×W×3"):
        full.detect(np.zeros((32, 32, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        full.detect(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="numpy array"):
        full.detect([[0, 0, 0]])


def test_boxes_clipped_for_face_at_edge(astronaut, full):
    # Cut the portrait through the face: the box must stay inside the image.
    part = np.ascontiguousarray(astronaut[100:, 150:])
    for f in full.detect(part):
        x, y, w, h = f.box
        assert x >= 0 and y >= 0 and x + w <= part.shape[1] + 1e-3 and y + h <= part.shape[0] + 1e-3


def test_haar_finds_astronaut(astronaut):
    with create_detector("haar") as det:
        faces = det.detect(astronaut)
        assert det.detect(np.zeros((120, 160, 3), np.uint8)) == []
    assert len(faces) >= 1
    f = faces[0]
    assert f.keypoints is None and 0.6 <= f.score <= 1.0
    cx, cy = _center(f)
    assert abs(cx - FACE_CENTER[0]) < 30 and abs(cy - FACE_CENTER[1]) < 30


def test_closed_detector_refuses(astronaut):
    det = create_detector("mediapipe-short")
    det.close()
    det.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(astronaut)


def test_anchor_layout():
    a = blazeface.ssd_anchor_centers(blazeface.SHORT_RANGE)
    # 16×16 cells × 2 anchors, then 8×8 cells × 6 anchors (three stride-16 layers share one map)
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(a[512], [0.5 / 8, 0.5 / 8]) and np.allclose(a[512:518], a[512])
    f = blazeface.ssd_anchor_centers(blazeface.FULL_RANGE)
    assert np.allclose(f[1], [1.5 / 48, 0.5 / 48])


def test_weighted_nms_merges_overlaps():
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [2, 2, 3, 3]], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    out = blazeface.weighted_nms(boxes, np.array([0.9, 0.6, 0.7]), kps, 0.3)
    assert [round(s, 2) for _, s, _ in out] == [0.9, 0.7]
    merged = out[0][0]
    assert 0 < merged[0] < 0.1  # score-weighted mean of the two overlapping boxes


def test_unclosed_detector_is_released_on_gc():
    import gc

    det = create_detector("mediapipe-short", engine="mediapipe")
    native = det._det
    del det
    gc.collect()
    assert native._handle is None  # weakref.finalize closed MediaPipe's task


def test_detect_from_worker_thread(astronaut, short):
    """The UI runs detection off the main thread (one thread at a time per detector)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        faces = pool.submit(short.detect, astronaut).result(timeout=30)
    assert len(faces) == 1


@pytest.mark.parametrize(
    ("name", "module", "hint"),
    [
        ("mediapipe", "mediapipe", "pip install 'mediapipe"),
        ("haar", "cv2", "pip install 'opencv-contrib-python"),
    ],
)
def test_missing_backend_names_the_package(name, module, hint, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` raise ImportError
    if module == "mediapipe":  # BlazeFace runs on LiteRT when that is installed; without both, nothing runs it
        monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
        monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ValueError, match=hint):
        create_detector(name)
