"""BlazeFace post-processing in numpy: SSD anchors, box/keypoint decoding, weighted NMS, letterboxing.

Why this exists: MediaPipe's Tasks ``FaceDetector`` graph hard-codes the *short-range* decoder (128×128
input, 896 anchors; see ``ConfigureSsdAnchorsCalculator`` in mediapipe/tasks/cc/vision/face_detector/
face_detector_graph.cc). Given the full-range model (192×192 input, 2304 anchors) it loads the file but
decodes the wrong anchors and returns meaningless boxes. So for full-range we let MediaPipe run only the
network (through the Tasks ``ImageEmbedder``, which returns the raw output tensors) and decode here, with
the parameters of MediaPipe's own ``face_detection_full_range.pbtxt`` / ``face_detection_short_range.pbtxt``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eacfer.infer.detect.base import Detection, finalize, make_detection


@dataclass(frozen=True)
class BlazeFaceSpec:
    """Decoder parameters of one BlazeFace model (from MediaPipe's graph configs)."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # aspect ratio 1.0 plus the interpolated one when enabled
    num_boxes: int
    suppression_iou: float = 0.3


SHORT_RANGE = BlazeFaceSpec(input_size=128, strides=(8, 16, 16, 16), anchors_per_layer=2, num_boxes=896)
FULL_RANGE = BlazeFaceSpec(input_size=192, strides=(4,), anchors_per_layer=1, num_boxes=2304)


def ssd_anchor_centers(spec: BlazeFaceSpec) -> np.ndarray:
    """N×2 anchor centres (x, y) in [0, 1], in the model's output order (fixed anchor size 1×1).

    Consecutive layers with the same stride share one feature map, so their anchors are interleaved
    per cell (this is how MediaPipe's SsdAnchorsCalculator orders them).

    Example:
        >>> ssd_anchor_centers(SHORT_RANGE).shape, ssd_anchor_centers(FULL_RANGE).shape
        ((896, 2), (2304, 2))
    """
    out = []
    i = 0
    strides = spec.strides
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = (j - i) * spec.anchors_per_layer
        n = int(np.ceil(spec.input_size / strides[i]))
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centers = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centers, per_cell, axis=0))
        i = j
    anchors = np.concatenate(out, axis=0).astype(np.float32)
    assert len(anchors) == spec.num_boxes, (len(anchors), spec.num_boxes)
    return anchors


def decode(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: int, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode raw outputs into boxes (N×4 x0,y0,x1,y1), scores (N) and keypoints (N×6×2), all in [0, 1]
    of the model input, keeping scores ≥ ``min_score``.

    ``raw_boxes`` is N×16 (x-centre, y-centre, w, h offsets then 6 keypoint offsets, in input pixels) and
    ``raw_scores`` N logits.
    """
    raw_boxes = raw_boxes.reshape(len(anchors), -1)[:, :16] / float(input_size)
    logits = np.clip(raw_scores.reshape(-1), -100.0, 100.0)
    scores = 0.5 * (1.0 + np.tanh(0.5 * logits))  # = sigmoid, without overflow warnings
    keep = scores >= min_score
    rb, anc, sc = raw_boxes[keep], anchors[keep], scores[keep]
    cx, cy = rb[:, 0] + anc[:, 0], rb[:, 1] + anc[:, 1]
    w, h = rb[:, 2], rb[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = rb[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
    return boxes, sc, kps


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's WEIGHTED non-max suppression: each cluster of overlapping candidates becomes one face
    whose box and keypoints are the score-weighted mean of the cluster, with the best score.

    Example:
        >>> b = np.array([[0, 0, 1, 1], [0.05, 0, 1.05, 1], [2, 2, 3, 3]], np.float32)
        >>> len(weighted_nms(b, np.array([0.9, 0.8, 0.7]), np.zeros((3, 6, 2)), 0.3))
        2
    """
    order = np.argsort(-scores)
    boxes, scores, kps = boxes[order], scores[order], kps[order]
    remaining = np.ones(len(scores), dtype=bool)
    out = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (_iou(boxes[i], boxes) > iou_threshold)
        cluster[i] = True
        wts = scores[cluster][:, None]
        box = (boxes[cluster] * wts).sum(0) / wts.sum()
        kp = (kps[cluster] * wts[:, :, None]).sum(0) / wts.sum()
        out.append((box, float(scores[i]), kp))
        remaining &= ~cluster
    return out


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize ``image`` into a ``size``×``size`` square keeping its aspect ratio, zero padding centred
    (like MediaPipe's keep_aspect_ratio + BORDER_ZERO). Returns the square, ``scale`` and ``pad`` (each a
    length-2 (x, y) array) such that ``input_xy = image_xy * scale + pad`` in input pixels.
    """
    import cv2

    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), dtype=np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py : py + nh, px : px + nw] = resized
    # Per-axis scales are exact after rounding the resized size, so boxes map back to the right pixels.
    return out, np.array([nw / w, nh / h], np.float32), np.array([px, py], np.float32)


def to_detections(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, spec: BlazeFaceSpec, scale: np.ndarray,
    pad: np.ndarray, shape: tuple[int, ...], min_score: float, min_face: int, max_faces: int,
) -> list[Detection]:
    """Raw network outputs on a :func:`letterbox` square → faces in image pixels (decoded, weighted NMS,
    clipped, ``min_face`` applied, best ``max_faces`` first). ``shape`` is the image's (H, W, …).

    Every BlazeFace runner (MediaPipe's embedder, LiteRT) ends here, so they decode alike.
    """
    h, w = shape[:2]
    size = spec.input_size
    boxes, scores, kps = decode(raw_boxes, raw_scores, anchors, size, min_score)
    out = []
    for box, score, kp in weighted_nms(boxes, scores, kps, spec.suppression_iou):
        # model-input [0,1] → input pixels → image pixels
        x0, y0 = (box[:2] * size - pad) / scale
        x1, y1 = (box[2:] * size - pad) / scale
        kp_img = ((kp * size - pad) / scale).astype(np.float32)
        out.append(make_detection(x0, y0, x1 - x0, y1 - y0, score, kp_img, w, h))
    return finalize(out, min_face)[:max_faces]
