"""BlazeFace run directly by LiteRT (``ai-edge-litert``), decoded with :mod:`eacfer.infer.detect.blazeface`.

Why not MediaPipe Tasks for these calls: the network is the same file, but a Tasks call adds graph and
image-conversion overhead, and the full-range path (through ``ImageEmbedder``) hands its 36,864 output
floats back as Python lists. Measured here (``benchmarks/detectors.py``, whole ``detect`` calls on a
640×360 frame): short-range 2.4 vs 3.7 ms, full-range 5.7 vs 9.5 ms. The video finder makes one
short-range call per tracked face per frame, so this is the detection stage's main cost. LiteRT is Google's maintained successor of
``tflite-runtime``; its raw outputs equal MediaPipe's to 1e-4 (``tests/infer/detect/test_litert_backend.py``).

The input is the letterboxed square scaled to [-1, 1] (what MediaPipe's graphs feed BlazeFace). One
interpreter thread: the detector shares the machine with the classifier's threads in the video pipeline,
and the full-range network alone was no faster on two threads (7.5 vs 6.1 ms a call).

Instances are not thread-safe; use each from one thread at a time.

Example:
    >>> det = LiteRTBlazeFace()  # short-range  # doctest: +SKIP
    >>> faces = det.detect(rgb_frame)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from eacfer.infer.detect import blazeface
from eacfer.infer.detect.base import Detection, check_rgb_image
from eacfer.infer.detect.quiet import native_stderr_to_log

log = logging.getLogger(__name__)

SHORT_RANGE_FILE = "face_detection_short_range.tflite"
FULL_RANGE_FILE = "face_detection_full_range_sparse.tflite"


def litert_available() -> bool:
    """True when ``ai-edge-litert`` can be imported (a core dependency; absent only on odd platforms).

    Example:
        >>> isinstance(litert_available(), bool)
        True
    """
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        return False
    return True


class LiteRTBlazeFace:
    """One BlazeFace model (``spec`` + bundled ``model_file``) on a LiteRT interpreter.

    Args:
        score_threshold: minimum face score; min_face: minimum shorter box side (pixels);
        max_faces: keep the best N; threads: interpreter threads (1, see the module docstring).
    """

    engine = "litert"

    def __init__(
        self,
        score_threshold: float = 0.6,
        min_face: int = 0,
        spec: blazeface.BlazeFaceSpec = blazeface.SHORT_RANGE,
        model_file: str | None = None,
        max_faces: int = 32,
        threads: int = 1,
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from eacfer.infer.detect.mediapipe_backend import asset_bytes

        self.spec = spec
        short = spec == blazeface.SHORT_RANGE
        self.name = "mediapipe-short" if short else "mediapipe-full"
        model_file = model_file or (SHORT_RANGE_FILE if short else FULL_RANGE_FILE)
        self.score_threshold, self.min_face, self.max_faces = float(score_threshold), int(min_face), int(max_faces)
        self._anchors = blazeface.ssd_anchor_centers(spec)
        with native_stderr_to_log():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
            self._it: Any = Interpreter(model_content=asset_bytes(model_file), num_threads=int(threads))
            self._it.allocate_tensors()
        inp = self._it.get_input_details()[0]
        expected = [1, spec.input_size, spec.input_size, 3]
        if list(inp["shape"]) != expected:
            raise ValueError(f"{model_file}: input {list(inp['shape'])}, expected {expected}")
        self._in = int(inp["index"])
        n = spec.num_boxes
        self._boxes_at = self._scores_at = -1
        for d in self._it.get_output_details():  # identify the two heads by size, not by name or order
            size = int(np.prod(d["shape"]))
            if size == n * 16:
                self._boxes_at = int(d["index"])
            elif size == n:
                self._scores_at = int(d["index"])
        if self._boxes_at < 0 or self._scores_at < 0:
            raise ValueError(f"{model_file}: unexpected BlazeFace outputs "
                             f"{[list(d['shape']) for d in self._it.get_output_details()]}")
        self._x = np.empty(expected, np.float32)

    def raw_outputs(self, square: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the network on an input-sized uint8 RGB square; returns (N×16 regressors, N logits)."""
        if self._it is None:
            raise RuntimeError("detector is closed")
        np.multiply(square, 1.0 / 127.5, out=self._x[0], casting="unsafe")
        self._x -= 1.0
        self._it.set_tensor(self._in, self._x)
        self._it.invoke()
        n = self.spec.num_boxes
        return (self._it.get_tensor(self._boxes_at).reshape(n, 16),
                self._it.get_tensor(self._scores_at).reshape(n))

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in an H×W×3 uint8 RGB image, sorted by score."""
        img = check_rgb_image(image_rgb)
        square, scale, pad = blazeface.letterbox(img, self.spec.input_size)
        raw_boxes, raw_scores = self.raw_outputs(square)
        return blazeface.to_detections(raw_boxes, raw_scores, self._anchors, self.spec, scale, pad, img.shape,
                                       self.score_threshold, self.min_face, self.max_faces)

    def close(self) -> None:
        """Drop the interpreter (its memory is freed with it)."""
        self._it = None

    def __enter__(self) -> LiteRTBlazeFace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
