"""JSON of the API's results (shared by the HTTP endpoints and the WebSocket stream).

Example:
    >>> result_json(frame_result, cam=False)["faces"][0]["emotion"]  # doctest: +SKIP
    'Happiness'
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def cam_png(face: Any, image_size: tuple[int, int]) -> str | None:
    """The face's attention map over the whole image as a grayscale PNG (base64): 0 outside the face crop."""
    import cv2

    cam = face.cam_image(image_size)
    if cam is None:
        return None
    ok, buf = cv2.imencode(".png", np.clip(cam * 255.0, 0, 255).astype(np.uint8))
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else None


def result_json(r: Any, cam: bool = False, **extra: Any) -> dict[str, Any]:
    """A FrameResult as the API's JSON: image size, faces (box, score, emotion, probabilities by class name,
    keypoints; ``track`` in streams; ``cam_png`` when asked) and stage timings in ms."""
    faces = []
    for f in r.faces:
        d = f.to_dict()
        if cam:
            d["cam_png"] = cam_png(f, r.image_size)
        faces.append(d)
    return {**extra, "image_size": list(r.image_size), "faces": faces,
            "timings_ms": {k: round(v, 3) for k, v in r.timings.items()}}
