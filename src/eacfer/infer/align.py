"""RAF-DB-like face crops: eyes levelled, square box with a margin, one affine warp.

Why this framing: RAF-DB's "aligned" images (100×100) are similarity-aligned faces with level eyes whose
face fills most of the frame, from the forehead to the chin, with little background and ears at the edges.
BlazeFace boxes already span roughly eyebrows/forehead to chin and cheek to cheek, so the crop is a square of
side ``max(w, h) * (1 + 2 * margin)`` centred on the box centre; the default ``margin=0.1`` (10 % of the box
added on each side) keeps the whole face, forehead to chin, as RAF-DB does, without much background.
With keypoints (eyes = keypoints 0 and 1) the square is rotated so the eye line becomes horizontal; without
keypoints (Haar) there is no rotation. Rotation, scale and translation are one ``cv2.warpAffine``, and the
same 2×3 matrix maps attention maps back into the photo (:func:`warp_map_to_image`).

Faces cut by an image edge: the crop is framed on the detector's *unclipped* box (``Detection.full_box``),
so the face keeps its place and size in the crop, and the part of the square that lies outside the photo is
padded with black (``border="black"``, the default). That is how RAF-DB's own aligned faces look where
their similarity warp reached beyond the source photo (black wedges and bands at the crop's edges), so the
classifier sees the kind of padding it was trained on. ``border="replicate"`` repeats the edge pixels
instead (the behaviour before 0.2).

Coordinates: boxes and keypoints use continuous pixel coordinates (pixel ``i`` spans ``[i, i+1)``), the
matrices follow OpenCV's pixel-centre convention (pixel ``i`` is at ``i``); the half-pixel shift is built in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from eacfer.infer.detect.base import Detection, check_rgb_image

DEFAULT_MARGIN = 0.1
BORDERS = ("black", "replicate")
#: how a face is framed: ``box`` (the detector's box, eyes levelled; the default) or ``landmarks`` (the
#: similarity transform of eyes and mouth onto :data:`RAFDB_TEMPLATE`, as RAF-DB made its aligned crops)
ALIGN_METHODS = ("box", "landmarks")
#: Where RAF-DB-style alignment puts the image-left eye, the image-right eye and the mouth centre in a
#: 100×100 aligned face (continuous pixel coordinates). RAF-DB made its crops by a similarity transform of "the
#: two eye locations and the centre of the mouth" (its README) but does not publish the target positions; these
#: are the mean positions of eacfer's synthetic RAF-DB faces (eacfer.data.synth, built to RAF-DB's framing),
#: not a measurement on real RAF-DB.
RAFDB_TEMPLATE = np.array([[35.0, 48.0], [65.0, 48.0], [50.0, 75.4]])


def eye_angle(det: Detection) -> float:
    """Angle (radians) of the line from the subject's right eye (image left) to the left eye; 0 without
    keypoints.

    Example:
        >>> d = Detection((0, 0, 10, 10), 1.0, np.array([[2.0, 5.0], [8.0, 5.0]]))
        >>> eye_angle(d)
        0.0
    """
    kp = det.keypoints
    if kp is None or len(kp) < 2:
        return 0.0
    dx, dy = float(kp[1][0] - kp[0][0]), float(kp[1][1] - kp[0][1])
    if math.hypot(dx, dy) < 1e-6:
        return 0.0
    return math.atan2(dy, dx)


def crop_transform(det: Detection, size: int, margin: float = DEFAULT_MARGIN, shift: float = 0.0) -> np.ndarray:
    """The 2×3 affine matrix (image pixels → crop pixels, OpenCV convention) used by :func:`align_face`.

    ``shift`` moves the square's centre towards the top of the face (along the levelled face's vertical) by
    that fraction of the box side: a model trained on faces framed higher than BlazeFace frames them (the
    starter model: OpenCV Haar boxes) gets its own framing back.

    Example:
        >>> m = crop_transform(Detection((10, 20, 50, 50), 0.9), size=100, margin=0.0)
        >>> # box centre (35, 45) is (34.5, 44.5) in OpenCV's pixel-centre coordinates → crop centre
        >>> np.round(transform_points(np.array([[34.5, 44.5]]), m), 3).tolist()
        [[49.5, 49.5]]
    """
    if size < 1:
        raise ValueError(f"crop size must be >= 1, got {size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x, y, w, h = (float(v) for v in (det.full_box if det.full_box is not None else det.box))
    side = max(w, h) * (1.0 + 2.0 * margin)
    if side <= 0:
        raise ValueError(f"cannot crop an empty box {det.box}")
    k = size / side
    a = eye_angle(det)
    c, s = math.cos(a), math.sin(a)
    # Rotate by -a so that the eye vector (cos a, sin a) becomes (1, 0), then scale.
    lin = k * np.array([[c, s], [-s, c]], dtype=np.float64)
    # the face's "up" in image coordinates is (sin a, -cos a) (perpendicular to the eye line, (0, -1) when level)
    center = np.array([x + w / 2.0, y + h / 2.0]) + shift * max(w, h) * np.array([s, -c])
    # continuous q = lin @ (p - center) + size/2, with p = p_cv + 0.5 and q = q_cv + 0.5
    t = lin @ (0.5 - center) + size / 2.0 - 0.5
    return np.hstack([lin, t[:, None]])


def template_points(det: Detection) -> np.ndarray | None:
    """(image-left eye, image-right eye, mouth centre) from a detection's keypoints, or None when it has none
    that allow it: BlazeFace's six (eyes 0 and 1, mouth centre 3) or RetinaFace's five (eyes 0 and 1, mouth
    corners 3 and 4, averaged).

    Example:
        >>> template_points(Detection((0, 0, 9, 9), 1.0, np.array([[1, 2], [5, 2], [3, 4], [2, 6], [4, 6.0]]))).tolist()
        [[1.0, 2.0], [5.0, 2.0], [3.0, 6.0]]
    """
    kp = None if det.keypoints is None else np.asarray(det.keypoints, dtype=np.float64)
    if kp is None or kp.ndim != 2 or kp.shape[1] != 2 or not np.isfinite(kp).all():
        return None
    if len(kp) == 6:
        return kp[[0, 1, 3]]
    if len(kp) == 5:
        return np.array([kp[0], kp[1], (kp[3] + kp[4]) / 2.0])
    return None


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation) mapping ``src`` points onto ``dst`` in the
    least-squares sense (same pixel convention in and out).

    Example:
        >>> (similarity_lstsq(np.array([[0, 0], [1, 0.0]]), np.array([[1, 1], [1, 3.0]])).round(6) + 0.0).tolist()
        [[0.0, -2.0, 1.0], [2.0, 0.0, 1.0]]
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    # x' = a·x − b·y + tx, y' = b·x + a·y + ty: linear in (a, b, tx, ty)
    rows = np.zeros((2 * len(src), 4))
    rows[0::2] = np.stack([src[:, 0], -src[:, 1], np.ones(len(src)), np.zeros(len(src))], 1)
    rows[1::2] = np.stack([src[:, 1], src[:, 0], np.zeros(len(src)), np.ones(len(src))], 1)
    (a, b, tx, ty), *_ = np.linalg.lstsq(rows, dst.reshape(-1), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def landmark_transform(det: Detection, size: int) -> np.ndarray | None:
    """The 2×3 matrix (image → ``size``×``size`` crop, OpenCV convention) aligning the eyes and the mouth centre
    onto :data:`RAFDB_TEMPLATE` scaled to ``size``; None when the detection has no usable keypoints.

    Example:
        >>> d = Detection((0, 0, 60, 60), 1.0, np.array([[17.5, 24], [32.5, 24], [0, 0], [25, 37.7], [0, 0], [0, 0]]))
        >>> transform_points(np.array([[25.0, 37.7]]) - 0.5, landmark_transform(d, 100)).round(1).tolist()
        [[49.5, 74.9]]
    """
    pts = template_points(det)
    if pts is None or math.hypot(*(pts[1] - pts[0])) < 1e-3:
        return None
    # keypoints and template are continuous coordinates; the matrix works on pixel centres (−0.5 on both sides)
    return similarity_lstsq(pts - 0.5, RAFDB_TEMPLATE * (size / 100.0) - 0.5)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to N×2 points (OpenCV pixel-centre coordinates).

    Detection keypoints are continuous coordinates; passing them directly is off by half a pixel,
    far below detector precision (subtract 0.5 first when it matters).

    Example:
        >>> transform_points(np.array([[1.0, 2.0]]), np.array([[1.0, 0, 3], [0, 1.0, 4]])).tolist()
        [[4.0, 6.0]]
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix, dtype=np.float64)[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix (crop pixels → image pixels).

    Example:
        >>> invert_affine(np.array([[2.0, 0, 1], [0, 2.0, 1]])).tolist()
        [[0.5, 0.0, -0.5], [0.0, 0.5, -0.5]]
    """
    m = np.asarray(matrix, dtype=np.float64)
    lin_inv = np.linalg.inv(m[:, :2])
    return np.hstack([lin_inv, (-lin_inv @ m[:, 2])[:, None]])


def align_face(
    image_rgb: np.ndarray, det: Detection, size: int, margin: float = DEFAULT_MARGIN, border: str = "black",
    shift: float = 0.0, align: str = "box",
) -> np.ndarray:
    """A ``size``×``size``×3 uint8 RGB crop of one face (eyes level, square box with ``margin``); where the
    square leaves the image it is padded with ``border`` (``"black"`` like RAF-DB, or ``"replicate"``).
    ``align="landmarks"`` frames the face by its keypoints instead (:func:`landmark_transform`; margin and
    shift then do not apply), falling back to the box for a detection without usable keypoints.

    Example:
        >>> img = np.zeros((120, 160, 3), np.uint8)
        >>> align_face(img, Detection((40, 30, 60, 60), 0.9), size=112).shape
        (112, 112, 3)
    """
    import cv2

    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, got {border!r}")
    if align not in ALIGN_METHODS:
        raise ValueError(f"align must be one of {', '.join(ALIGN_METHODS)}, got {align!r}")
    img = check_rgb_image(image_rgb)
    m = landmark_transform(det, size) if align == "landmarks" else None
    if m is None:
        m = crop_transform(det, size, margin, shift)
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
    src, m_src = img, m
    if scale < 0.5:
        # Strong downscaling with bilinear sampling aliases; pre-shrink only the region the crop reads
        # (INTER_AREA) and fold that into the same matrix, so the geometry is still one warp.
        src, m_src = _preshrink(img, m, size, scale)
    if border == "replicate":
        return cv2.warpAffine(src, m_src, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpAffine(src, m_src, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def _preshrink(img: np.ndarray, m: np.ndarray, size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = img.shape[:2]
    corners = transform_points(
        np.array([[-1, -1], [size, -1], [-1, size], [size, size]], float), invert_affine(m)
    )
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, w - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, h - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 3, x0 + 1, w))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 3, y0 + 1, h))
    roi = img[y0:y1, x0:x1]
    f = min(1.0, 2.0 * scale)  # leave the final warp a ≤2× reduction
    rw, rh = max(1, round(roi.shape[1] * f)), max(1, round(roi.shape[0] * f))
    small = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
    fx, fy = rw / roi.shape[1], rh / roi.shape[0]
    # small_cv = f * (img_cv - origin + 0.5) - 0.5  →  img_cv = (small_cv + 0.5) / f + origin - 0.5
    back = np.array([[1 / fx, 0, 0.5 / fx + x0 - 0.5], [0, 1 / fy, 0.5 / fy + y0 - 0.5]])
    m_small = m[:, :2] @ back[:, :2]
    t_small = m[:, :2] @ back[:, 2] + m[:, 2]
    return small, np.hstack([m_small, t_small[:, None]])


def align_faces(
    image_rgb: np.ndarray, dets: Sequence[Detection], size: int, margin: float = DEFAULT_MARGIN,
    border: str = "black", shift: float = 0.0, align: str = "box",
) -> np.ndarray:
    """N×size×size×3 uint8 crops for all detections (N may be 0), ready to batch.

    Example:
        >>> align_faces(np.zeros((50, 50, 3), np.uint8), [], size=64).shape
        (0, 64, 64, 3)
    """
    img = check_rgb_image(image_rgb)
    if not dets:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack([align_face(img, d, size, margin, border, shift, align) for d in dets])


def model_inputs(
    image_rgb: np.ndarray, dets: Sequence[Detection], input_size: int, face_size: int | None = None,
    margin: float | None = None, whole_image: bool = False, shift: float | None = None, align: str = "box",
) -> np.ndarray:
    """N×input_size×input_size×3 uint8 model inputs of ``dets``: the one place where a face becomes a model
    input (the predictor, the throughput workers and the int8 calibration crops all call it).

    Each face is aligned with ``margin`` (the model file's ``face_margin``; ``None``: :data:`DEFAULT_MARGIN`)
    and ``shift`` (its ``face_shift``, see :func:`crop_transform`; ``None``: 0) at ``face_size`` — the side of the face images the model was trained on (RAF-DB: 100) — and then resized
    to ``input_size`` with the training resize (Pillow bilinear), so it has the sharpness the model learnt
    from; without a ``face_size`` faces are cropped at ``input_size`` directly. ``whole_image=True`` treats
    the whole image as one already-aligned face (``detector="none"``, e.g. RAF-DB aligned crops).
    ``align="landmarks"`` frames faces by their keypoints (:func:`landmark_transform`) instead of their box.

    Example:
        >>> model_inputs(np.zeros((120, 160, 3), np.uint8), [Detection((40, 30, 60, 60), 0.9)], 64, 100).shape
        (1, 64, 64, 3)
    """
    face = int(face_size or input_size)
    if whole_image:
        return resize_square(resize_square(check_rgb_image(image_rgb), face), input_size)[None]
    crops = align_faces(image_rgb, dets, face, DEFAULT_MARGIN if margin is None else margin, shift=shift or 0.0,
                        align=align)
    return crops if face == input_size else np.stack([resize_square(c, input_size) for c in crops])


def check_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """Model inputs as every classifier takes them: N×size×size×3 uint8 (one H×W×3 crop becomes N=1).

    Example:
        >>> check_crops(np.zeros((8, 8, 3), np.uint8), 8).shape
        (1, 8, 8, 3)
    """
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or crops.dtype != np.uint8:
        raise ValueError(f"expected N×{size}×{size}×3 uint8 crops, got shape {crops.shape} dtype {crops.dtype}")
    return crops


def resize_square(img: np.ndarray, side: int) -> np.ndarray:
    """Pillow bilinear resize of an H×W×3 uint8 image to side×side (the resize of training).

    Example:
        >>> resize_square(np.zeros((10, 20, 3), np.uint8), 8).shape
        (8, 8, 3)
    """
    from PIL import Image

    if img.shape[:2] == (side, side):
        return img
    return np.array(Image.fromarray(np.ascontiguousarray(img)).resize((side, side), Image.Resampling.BILINEAR))


def warp_map_to_image(
    crop_map: np.ndarray, matrix: np.ndarray, size: int, image_shape: Sequence[int], fill: float = 0.0
) -> np.ndarray:
    """Warp a map defined on the ``size``×``size`` crop (e.g. a 7×7 CAM, any resolution) back into the
    image frame: returns an H×W float32 map, ``fill`` outside the crop.

    Example:
        >>> m = crop_transform(Detection((10, 10, 20, 20), 0.9), size=8, margin=0.0)
        >>> out = warp_map_to_image(np.ones((2, 2)), m, 8, (40, 40))
        >>> float(out[20, 20]), float(out[2, 2])
        (1.0, 0.0)
    """
    import cv2

    src = np.asarray(crop_map, dtype=np.float32)
    if src.ndim != 2:
        raise ValueError(f"crop_map must be 2-D, got shape {src.shape}")
    if src.shape != (size, size):
        src = np.asarray(cv2.resize(src, (size, size), interpolation=cv2.INTER_LINEAR), np.float32)  # no copy
    h, w = int(image_shape[0]), int(image_shape[1])
    return cv2.warpAffine(
        src,
        np.asarray(matrix, dtype=np.float64),
        (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float(fill),
    )
