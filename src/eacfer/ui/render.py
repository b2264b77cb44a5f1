"""Drawing an :class:`~eacfer.ui.session.Analysis` onto its frame for display, snapshots and recording.

The app's own look (selection highlight, raw vs smoothed labels, track ids); CAM colouring comes from
:mod:`eacfer.infer.viz` so the app and ``eacfer predict --cam`` show attention the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eacfer.ui.session import face_label

SELECTED_RGB = (255, 255, 255)


@dataclass
class RenderOptions:
    """What to draw."""

    smoothed: bool = True
    cam: bool = False
    selected: int | None = None  # index into Analysis.faces


def color_of(class_names: tuple[str, ...] | list[str], name: str) -> tuple[int, int, int]:
    """RGB colour of a class, the same as ``eacfer predict`` / ``eacfer video`` use (:mod:`eacfer.infer.viz`)."""
    from eacfer.infer.viz import class_color

    return class_color(list(class_names).index(name) if name in class_names else 0)


def overlay_cams(image: np.ndarray, faces: list[Any]) -> np.ndarray:
    """Blend each face's class attention map (warped to image space) over ``image``."""
    from eacfer.infer.viz import overlay_cam

    out = image
    size = (image.shape[1], image.shape[0])
    for face in faces:
        cam = face.cam_image(size) if hasattr(face, "cam_image") else None
        if cam is not None:
            out = overlay_cam(out, cam)
    return out


def render(image: np.ndarray, faces: list[Any], options: RenderOptions) -> np.ndarray:
    """Annotated copy of ``image`` (H×W×3 uint8 RGB): CAMs, boxes and ``#track emotion nn%`` labels.

    Example:
        >>> out = render(frame, analysis.faces, RenderOptions(smoothed=True))  # doctest: +SKIP
    """
    import cv2

    out = np.ascontiguousarray(image).copy()
    if options.cam and faces:
        out = np.ascontiguousarray(overlay_cams(out, faces))
    h, w = out.shape[:2]
    thick = max(2, round(min(h, w) / 240))
    scale = max(0.45, min(h, w) / 900)
    texts = []
    for face in faces:
        name, conf = face_label(face, options.smoothed)
        track = getattr(face, "track_id", None)
        texts.append(f"{'#' + str(track) + ' ' if track is not None else ''}{name} {100 * conf:.0f}%")
    places = label_places(out.shape, [f.box for f in faces], texts, scale, max(1, thick - 1))
    for i, face in enumerate(faces):
        x, y, bw, bh = (float(v) for v in face.box)
        p1 = (int(round(x)), int(round(y)))
        p2 = (int(round(x + bw)), int(round(y + bh)))
        name, conf = face_label(face, options.smoothed)
        color = color_of(tuple(face.class_names), name)
        selected = options.selected == i
        if selected:
            cv2.rectangle(out, (p1[0] - thick, p1[1] - thick), (p2[0] + thick, p2[1] + thick), SELECTED_RGB, thick)
        cv2.rectangle(out, p1, p2, color, thick + (1 if selected else 0))
        lx0, ly0, lx1, ly1 = places[i]
        (_, _), base = cv2.getTextSize(texts[i], cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thick - 1))
        cv2.rectangle(out, (lx0, ly0), (lx1, ly1), color, -1)
        cv2.putText(out, texts[i], (lx0 + 3, ly1 - 2 - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    max(1, thick - 1), cv2.LINE_AA)
    return out


def label_places(shape: tuple[int, ...], boxes: list[Any], texts: list[str], scale: float, thickness: int
                 ) -> list[tuple[int, int, int, int]]:
    """Where each face's label goes, ``(x0, y0, x1, y1)``: above its box, else below it, else one or more label
    heights further up or down, the first spot that overlaps no label placed before and stays in the image (in a
    group photo the labels are wider than the faces and would cover each other); the plain spot if none is free.

    Example:
        >>> a, b = label_places((400, 400, 3), [(100, 100, 40, 40), (145, 100, 40, 40)], ["Happiness 97%"] * 2,
        ...                     0.6, 1)
        >>> a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]  # apart
        True
    """
    import cv2

    h, w = shape[:2]
    placed: list[tuple[int, int, int, int]] = []
    for box, text in zip(boxes, texts, strict=True):
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        lw, lh = tw + 6, th + base + 4
        x, y, bw, bh = (int(round(float(v))) for v in box)
        x0 = max(0, min(x, w - lw))
        above, below = y - lh - 2, y + bh + 2
        tops = [above, below] + [t for k in (1, 2, 3) for t in (above - k * lh, below + k * lh)]
        spots = [(x0, t, x0 + lw, t + lh) for t in tops if 0 <= t and t + lh <= h]
        free = next((s for s in spots if not any(s[0] < p[2] and p[0] < s[2] and s[1] < p[3] and p[1] < s[3]
                                                  for p in placed)), None)
        spot = free or (spots[0] if spots else (x0, max(0, min(above, h - lh)), x0 + lw, max(0, min(above, h - lh)) + lh))
        placed.append(spot)
    return placed


def largest_face(faces: list[Any]) -> int | None:
    """Index of the face with the largest box area (the default selection)."""
    if not faces:
        return None
    return int(np.argmax([float(f.box[2]) * float(f.box[3]) for f in faces]))


def face_at(faces: list[Any], x: float, y: float) -> int | None:
    """Index of the smallest face box containing ``(x, y)`` (so nested/overlapping faces stay clickable)."""
    hits = [(float(f.box[2]) * float(f.box[3]), i) for i, f in enumerate(faces)
            if f.box[0] <= x <= f.box[0] + f.box[2] and f.box[1] <= y <= f.box[1] + f.box[3]]
    return min(hits)[1] if hits else None
