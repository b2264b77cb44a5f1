"""Small faces in large images: the tile grid's geometry, tile bookkeeping (with a fake detector that records
its crops), and the real BlazeFace finding small faces in HD photos and video (public-domain NASA portrait)."""

from __future__ import annotations

import numpy as np
import pytest

from eacfer.infer.detect import Detection, create_detector
from eacfer.infer.detect.tiles import (
    FULL_RANGE_INPUT,
    TILE_INPUT_PX,
    WHOLE_INPUT_PX,
    TiledDetector,
    _from_tile,
    tile_grid,
)
from testdata.scenes import background, match_faces, place_face, texture_frame

pytest_plugins = ["inference_fixtures"]  # shared fixtures: predictor

SIZES = [(800, 600), (960, 640), (1280, 720), (1600, 1200), (1920, 1080), (1080, 1920), (4000, 3000), (3000, 200)]


# -- geometry ----------------------------------------------------------------------------------------
def test_no_tiles_when_the_whole_image_sees_small_faces():
    for w, h in [(640, 480), (480, 640), (320, 240), (10, 10)]:
        assert tile_grid(w, h, small_face=48) == []
    assert tile_grid(4000, 3000, small_face=0) == []  # 0 turns tiles off
    assert tile_grid(1920, 1080, small_face=48) != []


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_every_face_the_whole_pass_may_miss_lies_whole_in_a_tile(width, height):
    """Spec of tiles.py: a face from small_face up to what the whole image finds is entirely inside a tile
    whose side puts it at >= TILE_INPUT_PX input pixels (unless max_tiles made the grid coarser)."""
    small = 48.0
    grid = tile_grid(width, height, small_face=small, max_tiles=24)
    assert 0 < len(grid) <= 24
    for x0, y0, x1, y1 in grid:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    side = max(max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in grid)
    reach = max(small, side * TILE_INPUT_PX / FULL_RANGE_INPUT)  # the face size this grid is for
    whole = max(width, height) * WHOLE_INPUT_PX / FULL_RANGE_INPUT
    rng = np.random.default_rng(0)
    for _ in range(400):
        f = rng.uniform(reach, max(reach, whole))
        f = min(f, width, height)
        x, y = rng.uniform(0, width - f), rng.uniform(0, height - f)
        inside = [t for t in grid if t[0] <= x and t[1] <= y and x + f <= t[2] and y + f <= t[3]]
        assert inside, (width, height, f, x, y)
        t = inside[0]
        assert f / max(t[2] - t[0], t[3] - t[1]) * FULL_RANGE_INPUT >= TILE_INPUT_PX - 1e-6


def test_the_grid_reaches_small_face_when_the_tile_budget_allows():
    grid = tile_grid(1280, 720, small_face=48, max_tiles=24)
    side = max(max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in grid)
    assert side * TILE_INPUT_PX / FULL_RANGE_INPUT <= 48 + 0.5
    # a 12-megapixel photo: the budget wins, the faces looked for grow instead of the tile count
    assert len(tile_grid(4000, 3000, small_face=48, max_tiles=6)) <= 6
    assert len(tile_grid(4000, 3000, small_face=48, max_tiles=24)) > 6


def test_a_face_cut_by_an_inner_tile_edge_is_dropped_and_others_are_moved():
    tile = (100, 50, 300, 250)  # inner on every side of a 400×300 image
    kp = np.array([[10.0, 10.0]], np.float32)
    whole = Detection((20, 30, 40, 40), 0.9, kp, full_box=(20, 30, 40, 40))
    moved = _from_tile(whole, tile, 400, 300)
    assert moved is not None and moved.box == (120, 80, 40, 40) and moved.full_box == (120, 80, 40, 40)
    np.testing.assert_allclose(moved.keypoints, [[110.0, 60.0]])
    for full in [(-5, 30, 40, 40), (0, 30, 40, 40), (20, -3, 40, 40), (170, 30, 40, 40), (20, 170, 40, 40)]:
        assert _from_tile(Detection((0, 0, 1, 1), 0.9, None, full_box=full), tile, 400, 300) is None, full
    # at the image's own edge the cut is real (a face leaving the photo): kept, clipped to the image
    edge = _from_tile(Detection((0, 30, 35, 40), 0.9, None, full_box=(-5, 30, 40, 40)), (0, 0, 200, 200), 400, 300)
    assert edge is not None and edge.box == (0.0, 30.0, 35.0, 40.0) and edge.full_box == (-5, 30, 40, 40)


# -- bookkeeping with fake detectors -----------------------------------------------------------------
class Recorder:
    """Records the image sizes it is called on; returns the faces given for a crop of that origin."""

    name = "fake"

    def __init__(self, faces=None):  # noqa: ANN001
        self.calls: list[tuple[int, int]] = []
        self.faces = faces or (lambda img: [])
        self.closed = False

    def detect(self, img):  # noqa: ANN001, ANN201
        self.calls.append(img.shape[:2])
        return self.faces(img)

    def close(self) -> None:
        self.closed = True


def test_photos_run_every_tile_and_sweeps_one_tile_per_call_in_turn():
    img = np.zeros((1080, 1920, 3), np.uint8)
    grid = tile_grid(1920, 1080, 48)
    whole, tiles = Recorder(), Recorder()
    det = TiledDetector(whole, tiles, small_face=48)
    det.detect(img)
    assert whole.calls == [(1080, 1920)] and tiles.calls == [(y1 - y0, x1 - x0) for x0, y0, x1, y1 in grid]
    sweep_tiles = Recorder()
    sweep = TiledDetector(Recorder(), sweep_tiles, small_face=48, tiles_per_call=1)
    for _ in range(len(grid) + 2):
        sweep.detect(img)
    shapes = [(y1 - y0, x1 - x0) for x0, y0, x1, y1 in grid]
    assert sweep_tiles.calls == shapes + shapes[:2]  # each tile in turn, then round again
    assert sweep.tiles_run == len(grid) + 2
    # a small image: no tiles at all
    sweep_tiles.calls.clear()
    sweep.detect(np.zeros((360, 640, 3), np.uint8))
    assert sweep_tiles.calls == []


def test_a_face_in_two_overlapping_tiles_is_one_face_and_tiny_tile_faces_are_dropped():
    img = np.zeros((720, 1280, 3), np.uint8)
    grid = tile_grid(1280, 720, 48)
    # one 60 px face at image (600, 300), seen by every tile that holds it whole, plus a 10 px speck
    face, speck = (600.0, 300.0, 60.0, 60.0), (900.0, 100.0, 10.0, 10.0)
    origins = iter(grid)

    def faces(crop):  # noqa: ANN001, ANN202
        x0, y0, x1, y1 = next(origins)
        out = []
        for (x, y, w, h) in (face, speck):
            if x0 <= x and y0 <= y and x + w <= x1 and y + h <= y1:
                out.append(Detection((x - x0, y - y0, w, h), 0.8, None, full_box=(x - x0, y - y0, w, h)))
        return out

    holders = sum(1 for x0, y0, x1, y1 in grid if x0 <= 600 and y0 <= 300 and 660 <= x1 and 360 <= y1)
    assert holders >= 2  # the case under test: the face lies in an overlap
    whole = Recorder()
    tiles = Recorder(faces)
    with TiledDetector(whole, tiles, small_face=48) as det:
        found = det.detect(img)
    assert [d.box for d in found] == [face]
    assert whole.closed and not tiles.closed  # the tile detector belongs to the whole-image one


def test_bad_tile_settings():
    with pytest.raises(ValueError, match="small_face"):
        TiledDetector(Recorder(), Recorder(), small_face=-1)
    with pytest.raises(ValueError, match="tiles_per_call"):
        TiledDetector(Recorder(), Recorder(), tiles_per_call=0)


# -- the real detector ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo_detector():
    det = create_detector("mediapipe")  # the photo default: both models + tiles
    yield det
    det.close()


@pytest.mark.parametrize(("width", "height", "px"), [(1920, 1080, 64), (1280, 720, 48), (1600, 1200, 56)])
def test_small_faces_in_hd_photos_are_found(photo_detector, width, height, px):
    canvas = background(width, height, 7)
    truth = [place_face(canvas, px, width * 0.3, height * 0.4), place_face(canvas, px, width * 0.75, height * 0.6)]
    assert match_faces([d.box for d in photo_detector.detect(canvas)], truth, width, height) == (2, 0)


def test_tiles_add_no_faces_on_large_textures(photo_detector):
    for kind in ("noise", "dots", "checker", "stripes"):
        for seed in range(2):
            assert photo_detector.detect(texture_frame(1920, 1080, kind, seed=seed)) == [], (kind, seed)


def test_the_video_finder_sweeps_tiles_and_then_tracks_a_small_face():
    from eacfer.infer.detect.finder import make_video_finder

    width, height = 1920, 1080
    canvas = background(width, height, 3)
    truth = place_face(canvas, 80, 1500, 800)
    n_tiles = len(tile_grid(width, height, 64))
    with make_video_finder() as finder:
        ids = [{d.track_id for d in finder.detect(canvas)} for _ in range(n_tiles + 6)]
        boxes = [d.box for d in finder.detect(canvas)]
    # no track: a scan (and one tile) on every frame until a tile finds it, then confirmed within 3 sightings
    first = next(i for i, s in enumerate(ids) if s)
    assert first <= n_tiles + 3 and all(s == {1} for s in ids[first:])
    assert match_faces(boxes, [truth], width, height) == (1, 0)
    with make_video_finder(small_face=0) as whole_only:
        assert all(whole_only.detect(canvas) == [] for _ in range(6))  # why the sweep exists


def test_summaries_record_the_tile_setting_actually_used_for_each_kind(predictor):
    assert predictor.detector_settings("image")["small_face"] == 48  # photos: the default
    assert predictor.detector_settings("video")["small_face"] == 64  # the finder's sweep: 64 px and up
    assert predictor.detector_settings("stream")["small_face"] == 0  # live: short-range scans, no tiles


def test_a_small_face_entering_while_another_is_tracked_is_found_within_one_sweep():
    """Scans come every 10 frames once a face is tracked, and a 72 px face changes too few thumbnail pixels
    to trigger one: the sweep's tile on every frame between scans is what finds it."""
    from eacfer.infer.detect.finder import make_video_finder

    width, height, enter = 1920, 1080, 8
    n_tiles = len(tile_grid(width, height, 64))
    base = background(width, height, 5)
    first = place_face(base, 90, 500, 400)
    with_second = base.copy()
    second = place_face(with_second, 72, 1400, 700)
    with make_video_finder() as finder:
        seen = []
        for i in range(enter + n_tiles + 4):
            frame = base if i < enter else with_second
            boxes = [d.box for d in finder.detect(frame)]
            seen.append(match_faces(boxes, [second], width, height)[0] if i >= enter else 0)
        assert match_faces(boxes, [first, second], width, height) == (2, 0)
        stats = finder.stats()
    assert seen[-1] == 1 and seen.index(1) <= enter + n_tiles + 3
    assert stats["tiles_run"] >= n_tiles and stats["full_scans"] < stats["frames"]


def test_a_face_seen_only_on_a_tile_needs_a_good_score_and_a_face_like_layout():
    """Lettering and noise fool the closer look of the tiles at scores of 0.60-0.66 (tiles.py): a tile's face
    needs 0.7 and plausible keypoints; the whole-image pass keeps its own faces as before."""
    img = np.zeros((720, 1280, 3), np.uint8)
    good_kp = np.array([[20, 25], [40, 25], [30, 35], [30, 45], [12, 28], [48, 28]], np.float32)
    bad_kp = good_kp[[1, 0, 2, 3, 5, 4]][:, ::-1].copy()  # eyes swapped and the layout turned sideways

    def tile_faces(crop):  # noqa: ANN001, ANN202
        return [Detection((200, 200, 60, 60), 0.65, good_kp + 200, full_box=(200, 200, 60, 60)),  # weak
                Detection((100, 100, 60, 60), 0.9, bad_kp + 100, full_box=(100, 100, 60, 60)),  # not a face
                Detection((300, 300, 60, 60), 0.9, good_kp + 300, full_box=(300, 300, 60, 60))]  # kept

    weak_whole = Detection((900, 500, 60, 60), 0.62, None, full_box=(900, 500, 60, 60))
    det = TiledDetector(Recorder(lambda img: [weak_whole]), Recorder(tile_faces), small_face=48, tiles_per_call=1)
    found = det.detect(img)
    x0, y0 = tile_grid(1280, 720, 48)[0][:2]
    assert sorted(d.box for d in found) == sorted([(300.0 + x0, 300.0 + y0, 60.0, 60.0), weak_whole.box])
