"""Small faces in large images: BlazeFace full-range run again on overlapping tiles.

Why: BlazeFace sees the whole image letterboxed to 192 px, and a face narrower than about 13 of those
input pixels is not found. Measured here (``both`` models, the NASA portrait on a textured background):
on a 1920×1080 frame faces of 96 px and less were missed and 128 px found; on 1280×720, 64 px missed and
96 px found; on a 1600×1200 photo a 56 px face was missed; a 12-megapixel photo lost faces of 200 px. So
a group photo from a phone, or an HD recording of a panel, loses every face that is not a close-up. Near
that limit the score depends on where the face sits: the 56 px face on crops of 658 px (16 input px)
scored 0.46–0.65 against the 0.6 threshold, on crops of 500 px (21.5 input px) 0.87. Tiles of side
``9.6 × small_face`` put a face of ``small_face`` pixels at 20 input pixels, where it is found.

Geometry (:func:`tile_grid`): the whole image covers faces of ``max(W, H) / 14.8`` px (13 input px) and up.
Tiles overlap by at least that much (and a quarter tile), so every face small enough to be missed on the
whole image lies entirely inside at least one tile; a face a tile cuts at an inner edge is dropped there
(its whole copy is in the neighbouring tile). Tiles look closer than the whole pass ever did, so they see
more things that resemble a face: on noise at 1920×1080 and 1600×1200 they found 21–22 px "faces" scoring
0.60–0.65, and on moving title lettering at 960×540 28–43 px ones scoring 0.61–0.66 (5 in 30 frames), while
the small real faces they are for scored 0.80–0.93. So a tile's face must score at least ``tile_score``
(0.7), be at least half of ``small_face`` and have its keypoints where a face has them
(:mod:`plausible`); a face a tile drops this way was never found by the whole pass either. Images small
enough for the whole pass get no tiles, and ``max_tiles`` bounds the cost: when more tiles would be needed,
``small_face`` grows until they fit.

:class:`TiledDetector` runs the whole-image detector first and then the tiles: every tile (photos), or the
next ``tiles_per_call`` tiles in turn (video: the finder's scans, plus :meth:`TiledDetector.detect_tiles`
on the frames between them; a sweep spread over frames keeps the cost per frame flat, and the finder's
region tracking keeps a small face once a tile found it). Faces are merged with
:func:`eacfer.infer.detect.merge.merge_detections`, the whole-image ones first.

Example:
    >>> tile_grid(640, 480, small_face=48)  # small enough: the whole image suffices
    []
    >>> len(tile_grid(1920, 1080, small_face=48))
    18
"""

from __future__ import annotations

import math

import numpy as np

from eacfer.infer.detect.base import Detection, FaceDetector, check_rgb_image, finalize, shift_detection
from eacfer.infer.detect.merge import merge_detections
from eacfer.infer.detect.plausible import is_plausible

#: Input pixels of a face that full-range BlazeFace (192 px input) finds on the whole image, mostly (above).
WHOLE_INPUT_PX = 13.0
#: Input pixels the tiles give a face of ``small_face`` px: found wherever it sits in the tile (above).
TILE_INPUT_PX = 20.0
#: Side of the full-range model's input.
FULL_RANGE_INPUT = 192

Tile = tuple[int, int, int, int]  # x0, y0, x1, y1


def _starts(length: int, tile: int, stride: float) -> list[int]:
    """Tile origins along one axis: evenly spread, the first at 0 and the last flush with the far edge."""
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def tile_grid(width: int, height: int, small_face: float = 48.0, max_tiles: int = 24) -> list[Tile]:
    """The tiles that find faces down to ``small_face`` px in a ``width``×``height`` image (``[]`` when the
    whole image already does). Row by row, as ``(x0, y0, x1, y1)``.

    Example:
        >>> tile_grid(960, 540, small_face=64)
        [(0, 0, 614, 540), (346, 0, 960, 540)]
    """
    if small_face <= 0 or max_tiles < 1:
        return []
    whole_finds = max(width, height) * WHOLE_INPUT_PX / FULL_RANGE_INPUT  # smallest face the whole pass finds
    face = float(small_face)
    while whole_finds > face:
        side = max(round(face * FULL_RANGE_INPUT / TILE_INPUT_PX), math.ceil(2 * whole_finds))
        overlap = max(side / 4.0, whole_finds)  # faces up to this size lie whole inside some tile
        stride = side - overlap
        xs, ys = _starts(width, side, stride), _starts(height, side, stride)
        if len(xs) * len(ys) <= max_tiles:
            return [(x, y, min(width, x + side), min(height, y + side)) for y in ys for x in xs]
        face *= 1.25  # too many tiles: settle for somewhat larger faces
    return []


def _from_tile(det: Detection, tile: Tile, width: int, height: int, margin: float = 1.0) -> Detection | None:
    """A tile's face in image coordinates, or None when an inner tile edge cuts it (the neighbour has it)."""
    x0, y0, x1, y1 = tile
    fx, fy, fw, fh = det.full_box if det.full_box is not None else det.box
    if ((x0 > 0 and fx < margin) or (y0 > 0 and fy < margin)
            or (x1 < width and fx + fw > x1 - x0 - margin) or (y1 < height and fy + fh > y1 - y0 - margin)):
        return None
    return shift_detection(det, x0, y0, width, height)


class TiledDetector:
    """``whole`` on the image, then ``tile_detector`` on the tiles of :func:`tile_grid`; faces merged.

    Args:
        whole: the whole-image detector (both BlazeFace models merged); owned (closed by :meth:`close`).
        tile_detector: the detector run on each tile (full-range BlazeFace; usually the one inside
            ``whole``, so it is not closed here unless ``owns_tile_detector``).
        small_face: smallest face to look for, in image pixels (0: no tiles).
        tiles_per_call: ``None`` runs every tile on each call (photos); ``k`` runs the next ``k`` tiles in
            turn (video scans), restarting the sweep when the frame size changes; :meth:`detect_tiles`
            advances the sweep without the whole-image pass.
        max_tiles: cap on the grid (``small_face`` grows to fit).
        min_face: drop boxes whose shorter side is smaller (pixels).
        tile_score: the score a face found only on a tile needs (see the module docstring).

    Example:
        >>> from eacfer.infer.detect import create_detector  # doctest: +SKIP
        >>> with create_detector("mediapipe-both", small_face=40) as det:  # doctest: +SKIP
        ...     faces = det.detect(group_photo)
    """

    def __init__(self, whole: FaceDetector, tile_detector: FaceDetector, small_face: float = 48.0,
                 tiles_per_call: int | None = None, max_tiles: int = 24, min_face: int = 0,
                 name: str = "mediapipe-both", owns_tile_detector: bool = False, tile_score: float = 0.7) -> None:
        if small_face < 0:
            raise ValueError(f"small_face must be >= 0 pixels, got {small_face}")
        if tiles_per_call is not None and tiles_per_call < 1:
            raise ValueError(f"tiles_per_call must be >= 1 or None, got {tiles_per_call}")
        self.whole, self.tile_detector = whole, tile_detector
        self.small_face, self.tiles_per_call, self.max_tiles = float(small_face), tiles_per_call, int(max_tiles)
        self.min_face, self.name, self.owns_tile_detector = int(min_face), name, owns_tile_detector
        self.tile_score = float(tile_score)
        self._grid_key: tuple[int, int] | None = None
        self._grid: list[Tile] = []
        self._min_box = 0.0
        self._next = 0
        self.tiles_run = 0

    def grid(self, width: int, height: int) -> list[Tile]:
        """The tiles used for a ``width``×``height`` image (cached per size)."""
        if self._grid_key != (width, height):
            self._grid_key, self._grid, self._next = (width, height), tile_grid(width, height, self.small_face,
                                                                                 self.max_tiles), 0
            side = max((max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in self._grid), default=0)
            # half the face size this grid is for (small_face, or larger when max_tiles made it grow)
            self._min_box = 0.5 * side * TILE_INPUT_PX / FULL_RANGE_INPUT
        return self._grid

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces on the whole image and on this call's tiles, merged; sorted by score."""
        img = check_rgb_image(image_rgb)
        return finalize(merge_detections([self.whole.detect(img), *self._tiles(img, self.tiles_per_call)]),
                        self.min_face)

    def detect_tiles(self, image_rgb: np.ndarray, count: int = 1) -> list[Detection]:
        """Faces on the next ``count`` tiles of the sweep only (no whole-image pass; ``[]`` for images small
        enough to need no tiles): the video finder advances the sweep on frames it does not scan."""
        img = check_rgb_image(image_rgb)
        return finalize(merge_detections(self._tiles(img, count)), self.min_face)

    def _tiles(self, img: np.ndarray, count: int | None) -> list[list[Detection]]:
        """One list of faces per tile run: every tile (``count=None``) or the next ``count`` in turn."""
        height, width = img.shape[:2]
        grid = self.grid(width, height)
        groups: list[list[Detection]] = []
        if not grid:
            return groups
        for _ in range(len(grid) if count is None else min(count, len(grid))):
            x0, y0, x1, y1 = tile = grid[self._next % len(grid)]
            self._next = (self._next + 1) % len(grid)
            found = self.tile_detector.detect(np.ascontiguousarray(img[y0:y1, x0:x1]))
            self.tiles_run += 1
            groups.append([d for d in (_from_tile(d, tile, width, height) for d in found)
                           if d is not None and d.score >= self.tile_score
                           and min(d.box[2], d.box[3]) >= self._min_box and is_plausible(d)])
        return groups

    def close(self) -> None:
        """Close the whole-image detector (and the tile detector when owned)."""
        self.whole.close()
        if self.owns_tile_detector:
            self.tile_detector.close()

    def __enter__(self) -> TiledDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
