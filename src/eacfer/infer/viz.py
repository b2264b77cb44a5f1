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


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)

#: Panel sizes tried, largest first, before a face's panel is dropped (crowded image).
PANEL_SCALES = (1.0, 0.75, 0.55)


def _intersects(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(r: Rect, w: int, h: int) -> bool:
    return r[0] >= 0 and r[1] >= 0 and r[2] <= w and r[3] <= h


def _probs(face: FaceResult, smoothed: bool) -> np.ndarray:
    return face.smoothed if smoothed and face.smoothed is not None else face.probabilities


def _font_scale(h: int, w: int) -> float:
    return max(0.4, min(h, w) / 900)


def face_label(face: FaceResult, index: int | None = None, smoothed: bool = True) -> str:
    """The text drawn above a face: ``#track`` in videos, else the face's index in predictions.csv.

    Example:
        >>> face = FaceResult(box=(0, 0, 9, 9), score=1.0, keypoints=None, emotion="Happy", class_index=1,
        ...                   probabilities=np.array([0.0, 1.0]), class_names=("Sad", "Happy"))
        >>> face_label(face, index=3)
        '3: Happy 1.00'
    """
    probs = _probs(face, smoothed)
    k = int(np.argmax(probs))
    # a face labelled "uncertain" (--min-confidence) says so, unless its smoothed track is drawn
    uncertain = face.emotion == "uncertain" and (not smoothed or face.smoothed is None)
    label = f"{'uncertain' if uncertain else face.class_names[k]} {float(probs[k]):.2f}"
    if face.track_id is not None:
        return f"#{face.track_id} {label}"
    return label if index is None else f"{index}: {label}"


def _box(face: FaceResult) -> Rect:
    x, y, bw, bh = (int(round(v)) for v in face.box)
    return x, y, x + bw, y + bh


def label_rect(shape: tuple[int, ...], face: FaceResult, label: str) -> Rect:
    """Where a face's label is drawn: above its box, or below it when there is no room above."""
    import cv2

    h, w = shape[:2]
    x, y, x1, y1 = _box(face)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, _font_scale(h, w), 1)
    ty = y - 4 if y - th - base - 4 >= 0 else min(h - 1, y1 + th + 4)
    x = max(0, min(x, w - tw - 4))  # kept inside the image at the right edge
    return x, ty - th - base, x + tw + 4, ty + base // 2 + 1


def _panel_size(names: Sequence[str], scale: float) -> tuple[int, int, int, int]:
    """(panel width, panel height, row height, text column width) of the probability panel."""
    import cv2

    (tw, th), _ = cv2.getTextSize("Sur", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    row = th + 6
    bar_w = max(24, 4 * tw)
    return tw + 6 + bar_w + 4, row * len(names), row, tw + 6


def layout_panels(shape: tuple[int, ...], faces: Sequence[FaceResult], labels: Sequence[str]) -> list[tuple[Rect, float] | None]:
    """Place each face's probability panel where it covers no face box, no label and no other panel.

    Tried in order: right of the box, left of it, below, above (slid along the box's side), at full size,
    then smaller (:data:`PANEL_SCALES`); a face whose panel fits nowhere gets None (no panel), so crowded
    photos show boxes and labels only. Returns ``(rect, font scale)`` per face.

    Example:
        >>> layout_panels((100, 100, 3), [], [])
        []
    """
    h, w = shape[:2]
    base = _font_scale(h, w) * 0.85
    boxes = [_box(f) for f in faces]
    taken: list[Rect] = [*boxes, *(label_rect(shape, f, t) for f, t in zip(faces, labels, strict=True))]
    out: list[tuple[Rect, float] | None] = []
    for f, (x0, y0, x1, y1) in zip(faces, boxes, strict=True):
        placed = None
        for factor in PANEL_SCALES:
            scale = base * factor
            pw, ph, _, _ = _panel_size(f.class_names, scale)
            ys = [y0, y1 - ph, max(0, min(y0, h - ph))]
            xs = [x0, x1 - pw, max(0, min(x0, w - pw))]
            candidates = [(x1 + 4, yy) for yy in ys] + [(x0 - 4 - pw, yy) for yy in ys] \
                + [(xx, y1 + 4) for xx in xs] + [(xx, y0 - 4 - ph) for xx in xs]
            for px, py in candidates:
                r = (px, py, px + pw, py + ph)
                if _inside(r, w, h) and not any(_intersects(r, t) for t in taken):
                    placed = (r, scale)
                    break
            if placed:
                break
        if placed:
            taken.append(placed[0])
        out.append(placed)
    return out


def _draw_box_and_label(image: np.ndarray, face: FaceResult, label: str, color_order: str, smoothed: bool) -> None:
    import cv2

    h, w = image.shape[:2]
    k = int(np.argmax(_probs(face, smoothed)))
    color = class_color(k, color_order)
    x, y, x1, y1 = _box(face)
    cv2.rectangle(image, (x, y), (x1, y1), color, max(1, round(min(h, w) / 300)), cv2.LINE_AA)
    lx0, ly0, lx1, ly1 = label_rect(image.shape, face, label)
    (_, _), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, _font_scale(h, w), 1)
    cv2.rectangle(image, (lx0, ly0), (lx1 - 1, ly1 - 1), color, -1)
    cv2.putText(image, label, (lx0 + 2, ly1 - 1 - base // 2 - 2), cv2.FONT_HERSHEY_SIMPLEX, _font_scale(h, w),
                (0, 0, 0), 1, cv2.LINE_AA)


def _draw_bars(image: np.ndarray, names: Sequence[str], probs: np.ndarray, panel: tuple[Rect, float],
               color_order: str) -> None:
    import cv2

    (px, py, x1, y1), scale = panel
    _, _, row, text_w = _panel_size(names, scale)
    bar_w = x1 - px - text_w - 4
    roi = image[py:y1, px:x1]
    roi[:] = (roi >> 2) + 16  # a dark panel keeps the bars readable on any background (integer ops)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, (name, p) in enumerate(zip(names, probs, strict=True)):
        ry = py + i * row
        cv2.putText(image, name[:3], (px + 3, ry + row - 4), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
        bx = px + text_w
        cv2.rectangle(image, (bx, ry + 3), (bx + max(1, int(bar_w * float(p))), ry + row - 2),
                      class_color(i, color_order), -1)


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

    Each box is labelled with the face's index in ``faces`` (the ``face`` column of predictions.csv), or
    its track id in videos. Probability panels go where they cover no other face, label or panel: beside
    the box, smaller when space is short, left out when the image is too crowded (:func:`layout_panels`).

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
    labels = [face_label(f, i, smoothed) for i, f in enumerate(faces)]
    if bars:  # panels first: boxes and labels are drawn over nothing but their own image
        for f, panel in zip(faces, layout_panels(out.shape, faces, labels), strict=True):
            if panel is not None:
                _draw_bars(out, f.class_names, _probs(f, smoothed), panel, color_order)
    for f, label in zip(faces, labels, strict=True):
        _draw_box_and_label(out, f, label, color_order, smoothed)
    return out
