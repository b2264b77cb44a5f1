"""OpenCV Haar-cascade fallback detector (frontal faces, no keypoints, ~10× slower than BlazeFace).

Needs OpenCV 4.x with its bundled cascades (``cv2.data.haarcascades``); opencv-python-headless 5.x dropped
them. Not thread-safe: use one instance from one thread at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eacfer.infer.detect.base import Detection, check_rgb_image, clip_box, finalize

CASCADE_FILE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    """``cv2.CascadeClassifier`` with the frontal-face default cascade.

    Haar gives no confidence; ``score`` squashes the number ``n`` of raw detections merged into a box:
    ``n / (n + 3)``. A box needs ``n > min_neighbors`` (OpenCV's own rule; the default 5 means n ≥ 6,
    score ≥ 0.67) and ``score >= score_threshold``.

    Example:
        >>> det = HaarDetector()  # doctest: +SKIP
        >>> det.detect(rgb)[0].keypoints is None  # doctest: +SKIP
        True
    """

    name = "haar"

    def __init__(
        self,
        score_threshold: float = 0.6,
        min_face: int = 0,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        try:
            import cv2
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ValueError(
                "the 'haar' detector needs OpenCV 4.x: pip install 'opencv-contrib-python>=4.9,<5'"
            ) from exc
        data = getattr(cv2, "data", None)
        path = Path(getattr(data, "haarcascades", "")) / CASCADE_FILE
        if data is None or not hasattr(cv2, "CascadeClassifier") or not path.is_file():
            raise ValueError(
                f"the 'haar' detector needs OpenCV's bundled cascade {CASCADE_FILE} (missing in this OpenCV "
                f"{cv2.__version__}; opencv 5.x dropped them): pip install 'opencv-contrib-python>=4.9,<5'"
            )
        self._cv2 = cv2
        self._clf: Any = cv2.CascadeClassifier(str(path))
        if self._clf.empty():
            raise ValueError(f"could not load the Haar cascade {path}")
        self.score_threshold = float(score_threshold)
        self.min_face = int(min_face)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in an H×W×3 uint8 RGB image, sorted by score (no keypoints)."""
        img = check_rgb_image(image_rgb)
        if self._clf is None:
            raise RuntimeError("detector is closed")
        cv2 = self._cv2
        h, w = img.shape[:2]
        gray = cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
        min_size = (max(self.min_face, 20), max(self.min_face, 20))
        # minNeighbors=1 returns every merged group with its support count, so the score can rank boxes.
        boxes, counts = self._clf.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=1, minSize=min_size
        )
        out = []
        for (x, y, bw, bh), n in zip(
            np.asarray(boxes).reshape(-1, 4), np.asarray(counts).reshape(-1), strict=True
        ):
            if n <= self.min_neighbors:  # same acceptance rule as OpenCV's minNeighbors
                continue
            score = float(n) / (float(n) + 3.0)
            if score < self.score_threshold:
                continue
            out.append(Detection(clip_box(x, y, bw, bh, w, h), score, None))
        return finalize(out, self.min_face)

    def close(self) -> None:
        """Drop the classifier."""
        self._clf = None

    def __enter__(self) -> HaarDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
