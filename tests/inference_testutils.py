"""Shared fixtures of the inference tests (predictor, backends, export, tracking, video, predict/video CLIs).

Fixtures live in ``inference_fixtures.py``; a test module enables them with
``pytest_plugins = ["inference_fixtures"]``.
Models have random weights and a 64 px input: the pipeline, not the accuracy, is under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FACE = Path(__file__).parent / "fixtures" / "faces" / "astronaut.jpg"
#: where the astronaut's face is in the 512×512 portrait (x, y, w, h), generously
FACE_REGION = (150, 40, 150, 160)


def calibrated(net, size: int):
    """Random weights, but BatchNorm statistics measured on random images.

    With torchvision's initialisation the features of an untrained MobileNetV2 vanish (≈1e-10) in eval
    mode, so every input gets the same output; recalibrated BatchNorm makes outputs depend on the input,
    which the tests (colour order, per-face results, ONNX parity) need.
    """
    import torch

    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.rand(8, 3, size, size) * 4 - 2)
    for m in bns:
        m.momentum = 0.1
    torch.nn.init.normal_(net.fc.weight, std=0.05)
    return net.eval()


def save_random_model(path: Path, backbone: str = "mobilenet_v2", size: int = 64, seed: int = 0) -> Path:
    import torch

    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo

    torch.manual_seed(seed)
    net = calibrated(create_model(backbone), size)
    save_model(path, net, ModelInfo(backbone, list(RAFDB_CLASSES), size, list(IMAGENET_MEAN), list(IMAGENET_STD)))
    return path


def head_crop(face_rgb: np.ndarray) -> np.ndarray:
    """The astronaut's head and shoulders (a portrait tile for composed images and clips)."""
    return np.ascontiguousarray(face_rgb[10:270, 110:350])


def compose_faces(face_rgb: np.ndarray, n: int = 3, tile_h: int = 220) -> np.ndarray:
    """``n`` portrait tiles side by side on a grey canvas (every other one mirrored)."""
    import cv2

    tile = head_crop(face_rgb)
    tile = cv2.resize(tile, (int(tile.shape[1] * tile_h / tile.shape[0]), tile_h), interpolation=cv2.INTER_AREA)
    gap = 40
    canvas = np.full((tile_h + 2 * gap, n * (tile.shape[1] + gap) + gap, 3), 128, np.uint8)
    for i in range(n):
        x = gap + i * (tile.shape[1] + gap)
        canvas[gap:gap + tile_h, x:x + tile.shape[1]] = tile[:, ::-1] if i % 2 else tile
    return canvas


def make_clip(path: Path, face_rgb: np.ndarray, frames: int = 24, second_face_from: int | None = None,
              size: tuple[int, int] = (640, 360)) -> Path:
    from eacfer.demo import make_moving_face_clip

    return make_moving_face_clip(path, head_crop(face_rgb), frames=frames, size=size,
                                 second_face_from=second_face_from, face_height=min(220, size[1] - 20))


def count_frames(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


class _Hostile:
    """Unpickling this runs ``open(marker, 'w')`` — a stand-in for arbitrary code in a model file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_hostile_pt(path: Path, marker: Path) -> Path:
    """A ``.pt`` whose unpickling would create ``marker`` (torch.save format, plain pickle inside)."""
    import torch

    torch.save({"format": "eacfer-model", "payload": _Hostile(str(marker))}, path)
    assert not marker.exists()
    return path
