"""Merge of tile answers: mapping round trip, cut objects joined, duplicates dropped, nothing invented."""

from __future__ import annotations

from backend.gemini_ls.tiling.grid import Tile, make_grid
from backend.gemini_ls.tiling.merge import Region, merge, to_image_box, to_tile_box
from hypothesis import given
from hypothesis import strategies as st

coord = st.floats(0, 5000, allow_nan=False)


@given(coord, coord, coord, coord, st.integers(0, 4000), st.integers(0, 4000))
def test_mapping_round_trip(a, b, c, d, x0, y0):
    tile = Tile(x0, y0, x0 + 1000, y0 + 1000)
    box = (a, b, c, d)
    back = to_tile_box(to_image_box(box, tile), tile)
    assert all(abs(p - q) < 1e-6 for p, q in zip(back, box, strict=True))


def _in_tile(grid, index, box):
    t = grid.tiles[index]
    return Region("cat", (box[0] - t.x0, box[1] - t.y0, box[2] - t.x0, box[3] - t.y0))


def test_an_object_cut_by_a_tile_border_becomes_one_region():
    grid = make_grid(2000, 1000, 1, 2, 100)  # tiles [0, 1050) and [950, 2000)
    left, right = grid.tiles
    obj = (700.0, 300.0, 1500.0, 700.0)
    a = (obj[0], obj[1], float(left.x1), obj[3])
    b = (float(right.x0), obj[1], obj[2], obj[3])
    out = merge([[_in_tile(grid, 0, a)], [_in_tile(grid, 1, b)]], grid.tiles, 2000, 1000)
    assert [r.box for r in out] == [obj]


def test_a_small_object_seen_in_both_tiles_is_kept_once():
    grid = make_grid(2000, 1000, 1, 2, 100)
    obj = (990.0, 400.0, 1020.0, 430.0)
    out = merge([[_in_tile(grid, 0, obj)], [_in_tile(grid, 1, obj)]], grid.tiles, 2000, 1000)
    assert len(out) == 1 and out[0].box == obj


boxes = st.tuples(st.integers(0, 1900), st.integers(0, 900), st.integers(5, 300), st.integers(5, 300))


@given(st.lists(st.tuples(st.integers(0, 1), boxes, st.sampled_from(["cat", "dog"])), max_size=12))
def test_no_region_is_invented(answers):
    grid = make_grid(2000, 1000, 1, 2, 100)
    per_tile: list[list[Region]] = [[], []]
    for index, (x, y, w, h), label in answers:
        t = grid.tiles[index]
        box = (float(max(t.x0, x)), float(y), float(min(t.x1, max(t.x0, x) + w)), float(min(1000, y + h)))
        if box[2] > box[0] and box[3] > box[1]:
            per_tile[index].append(_in_tile(grid, index, box) if label == "cat" else
                                   Region("dog", _in_tile(grid, index, box).box))
    out = merge(per_tile, grid.tiles, 2000, 1000)
    n = sum(len(t) for t in per_tile)
    assert len(out) <= n
    used = [s for r in out for s in r.sources]
    assert len(used) == len(set(used)) and all(0 <= s < n for s in used)
    for r in out:
        assert r.sources  # every region comes from answers
