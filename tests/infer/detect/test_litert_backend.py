"""BlazeFace on LiteRT must be the same detector as BlazeFace on MediaPipe Tasks (same bundled files).

The reference is MediaPipe's own pipeline: the Tasks ``ImageEmbedder`` (raw tensors, MediaPipe's own
input normalisation from the model metadata) and the Tasks ``FaceDetector`` (MediaPipe's decoder and NMS)
for short-range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (the MediaPipe engine is used)")

from eacfer.infer.detect import blazeface, create_detector, resolve_engine  # noqa: E402
from eacfer.infer.detect.base import box_iou  # noqa: E402
from eacfer.infer.detect.litert_backend import LiteRTBlazeFace  # noqa: E402
from eacfer.infer.detect.mediapipe_backend import (  # noqa: E402
    FULL_RANGE_FILE,
    SHORT_RANGE_FILE,
    MediaPipeRaw,
    MediaPipeShortRange,
)

FIXTURE = Path(__file__).parents[2] / "fixtures" / "faces" / "astronaut.jpg"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(FIXTURE).convert("RGB"))


def _group(face: np.ndarray) -> np.ndarray:
    """Four faces at different scales on a gradient (as test_detect's group photo)."""
    head = Image.fromarray(face).crop((110, 10, 340, 260))
    canvas = np.zeros((600, 800, 3), np.uint8)
    canvas[:] = np.linspace(40, 220, 800)[None, :, None].astype(np.uint8)
    for x, y, hh in [(20, 20, 300), (420, 40, 240), (60, 360, 200), (480, 380, 170)]:
        ww = round(230 * hh / 250)
        canvas[y: y + hh, x: x + ww] = np.asarray(head.resize((ww, hh)))
    return canvas


@pytest.mark.parametrize("spec,model", [(blazeface.SHORT_RANGE, SHORT_RANGE_FILE),
                                        (blazeface.FULL_RANGE, FULL_RANGE_FILE)])
def test_raw_outputs_equal_mediapipe_embedder(astronaut, spec, model):
    square, _, _ = blazeface.letterbox(astronaut, spec.input_size)
    with MediaPipeRaw(0.6, spec=spec, model_file=model) as mp, LiteRTBlazeFace(0.6, spec=spec) as lite:
        b_mp, s_mp = mp.raw_outputs(square)
        b_lite, s_lite = lite.raw_outputs(square)
    assert b_lite.shape == (spec.num_boxes, 16) and s_lite.shape == (spec.num_boxes,)
    # a wrong input scaling ([0, 1] or [0, 255] instead of [-1, 1]) moves the logits by whole units
    assert np.abs(s_lite - s_mp).max() < 1e-2
    assert np.abs(b_lite - b_mp).max() < 1e-2


def _match(a, b) -> None:
    assert len(a) == len(b) > 0
    for d in a:
        best = max(b, key=lambda e: box_iou(d.box, e.box))
        assert box_iou(d.box, best.box) > 0.9
        assert abs(d.score - best.score) < 0.05
        assert np.abs(d.keypoints - best.keypoints).max() < 8


def test_short_range_matches_mediapipe_face_detector(astronaut):
    with MediaPipeShortRange(0.6) as reference, create_detector("mediapipe-short", engine="litert") as lite:
        assert isinstance(lite, LiteRTBlazeFace)
        _match(lite.detect(astronaut), reference.detect(astronaut))
        # a crop around the face, as the video finder's region scans use it
        crop = np.ascontiguousarray(astronaut[0:300, 80:380])
        _match(lite.detect(crop), reference.detect(crop))


def test_full_and_both_match_the_mediapipe_engine(astronaut):
    group = _group(astronaut)
    for mode in ("full", "both"):
        with create_detector("mediapipe", mode=mode, engine="litert") as lite, \
                create_detector("mediapipe", mode=mode, engine="mediapipe") as mp:
            a, b = lite.detect(group), mp.detect(group)
        assert len(a) == 4, mode
        _match(a, b)


def test_engine_choice(monkeypatch):
    assert resolve_engine("litert") == "litert" and resolve_engine("mediapipe") == "mediapipe"
    assert resolve_engine("auto") == "litert"  # installed here
    with pytest.raises(ValueError, match="unknown detector engine 'tflite'"):
        resolve_engine("tflite")
    # without ai-edge-litert, auto falls back to MediaPipe Tasks
    import eacfer.infer.detect.litert_backend as lb

    monkeypatch.setattr(lb, "litert_available", lambda: False)
    assert resolve_engine("auto") == "mediapipe"
    with create_detector("mediapipe-short") as det:
        assert isinstance(det, MediaPipeShortRange)


def test_closed_detector_refuses(astronaut):
    det = LiteRTBlazeFace()
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(astronaut)
