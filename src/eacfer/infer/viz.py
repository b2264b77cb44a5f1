"""Drawing results: face boxes, labels, probability bars and attention-map (CAM) overlays.

Everything is drawn with OpenCV primitives directly on uint8 arrays (well under a millisecond per face; the
``draw`` stage in ``benchmarks/RESULTS.md``), which matters when every frame of a video is annotated. Colours are given in RGB; pass
``color_order="bgr"`` when drawing on an OpenCV (BGR) frame so the same emotion keeps the same colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eacfer.infer.results import FaceResult

#: RGB colour per class index (RAF-DB order: Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 200, 0), (160, 90, 255), (60, 180, 75), (255, 225, 25), (0, 130, 200), (230, 25, 75), (200, 200, 200),
    (245, 130, 48), (70, 240, 240), (240, 50, 230),
)


def class_color(index: int, color_order: str = "rgb") -> tuple[int, int, int]:
    """Colour of a class, in ``color_order``."""
    c = PALETTE[index % len(PALETTE)]
    return c[::-1] if color_order == "bgr" else c


def overlay_cam(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45, color_order: str = "rgb") -> np.ndarray:
    """Blend a [0, 1] attention map (H×W, image space) onto ``image`` in place, only where it is > 0.

    Example:
        >>> overlay_cam(img, face.cam_image(r.image_size))  # doctest: +SKIP
    """
    import cv2

    if cam.shape[:2] != image.shape[:2]:
        raise ValueError(f"CAM shape {cam.shape[:2]} does not match image {image.shape[:2]}")
    ys, xs = np.nonzero(cam > 1e-6)
    if len(ys) == 0:
        return image
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    region = cam[y0:y1, x0:x1]
    heat = cv2.applyColorMap(np.clip(region * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)  # BGR
    if color_order == "rgb":
        heat = heat[:, :, ::-1]
    roi = image[y0:y1, x0:x1]
    a = (alpha * (region > 1e-6)).astype(np.float32)[:, :, None]
    roi[:] = (roi.astype(np.float32) * (1 - a) + heat.astype(np.float32) * a).astype(np.uint8)
    return image


def draw_face(
    image: np.ndarray,
    face: FaceResult,
    bars: bool = True,
    color_order: str = "rgb",
    smoothed: bool = True,
) -> np.ndarray:
    """Draw one face's box, label (track id, emotion, probability) and probability bars, in place."""
    import cv2

    h, w = image.shape[:2]
    probs = face.smoothed if smoothed and face.smoothed is not None else face.probabilities
    k = int(np.argmax(probs))
    color = class_color(k, color_order)
    x, y, bw, bh = (int(round(v)) for v in face.box)
    thick = max(1, round(min(h, w) / 300))
    cv2.rectangle(image, (x, y), (x + bw, y + bh), color, thick, cv2.LINE_AA)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.4, min(h, w) / 900)
    label = f"{face.class_names[k]} {float(probs[k]):.2f}"
    if face.track_id is not None:
        label = f"#{face.track_id} {label}"
    (tw, th), base = cv2.getTextSize(label, font, scale, 1)
    ty = y - 4 if y - th - base - 4 >= 0 else min(h - 1, y + bh + th + 4)
    cv2.rectangle(image, (x, ty - th - base), (x + tw + 4, ty + base // 2), color, -1)
    cv2.putText(image, label, (x + 2, ty - 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    if bars:
        _draw_bars(image, face.class_names, probs, (x, y, bw, bh), color_order, scale * 0.85)
    return image


def _draw_bars(image: np.ndarray, names: Sequence[str], probs: np.ndarray, box: tuple[int, int, int, int],
               color_order: str, scale: float) -> None:
    import cv2

    h, w = image.shape[:2]
    x, y, bw, bh = box
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), _ = cv2.getTextSize("Sur", font, scale, 1)
    row = th + 6
    bar_w = max(40, 4 * tw // 1)
    text_w = tw + 6
    panel_w = text_w + bar_w + 4
    px = x + bw + 4 if x + bw + 4 + panel_w <= w else max(0, x - 4 - panel_w)
    py = max(0, min(y, h - row * len(names)))
    # a dark panel keeps the bars readable on any background
    x1, y1 = min(w, px + panel_w), min(h, py + row * len(names))
    if x1 > px and y1 > py:
        roi = image[py:y1, px:x1]
        roi[:] = (roi >> 2) + 16  # darken to 25 % (+16): integer ops, no float copy
    for i, (name, p) in enumerate(zip(names, probs, strict=True)):
        ry = py + i * row
        if ry + row > h:
            break
        cv2.putText(image, name[:3], (px + 3, ry + row - 4), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
        bx = px + text_w
        cv2.rectangle(image, (bx, ry + 3), (bx + max(1, int(bar_w * float(p))), ry + row - 2), class_color(i, color_order), -1)


def annotate(
    image: np.ndarray,
    faces: Sequence[FaceResult],
    bars: bool = True,
    cam: bool = False,
    color_order: str = "rgb",
    copy: bool = True,
    smoothed: bool = True,
) -> np.ndarray:
    """Draw every face (and optionally its CAM) on an H×W×3 uint8 image.

    Args:
        image: the frame (RGB, or BGR with ``color_order="bgr"``).
        faces: results to draw (``FrameResult.faces``).
        bars: probability bars next to each box.
        cam: blend each face's attention map first (faces need ``cam``, i.e. ``predict(..., cam=True)``).
        copy: draw on a copy (default) or in place (videos: avoids one frame copy).
        smoothed: label with the track's smoothed probabilities when present.

    Example:
        >>> out = annotate(r.image, r.faces, cam=True)  # doctest: +SKIP
    """
    out = image.copy() if copy or not image.flags.writeable else image
    if cam:
        size = (out.shape[1], out.shape[0])
        for f in faces:
            m = f.cam_image(size)
            if m is not None:
                overlay_cam(out, m, color_order=color_order)
    for f in faces:
        draw_face(out, f, bars=bars, color_order=color_order, smoothed=smoothed)
    return out
