"""Tile grid: coverage, overlap, auto's rule, the setting's syntax."""

from __future__ import annotations

import pytest
from backend.gemini_ls.tiling.grid import (
    LEVEL_TOKENS,
    MIN_VISIBLE_PX,
    auto_grid,
    make_grid,
    min_overlap,
    needs_tiling,
    parse_tiling,
    plan_grid,
    seen_scale,
)
from hypothesis import given
from hypothesis import strategies as st


def test_a_28px_object_in_a_6000x4000_photo_is_5px_at_high():
    assert round(28 * seen_scale(6000, 4000, "HIGH")) == 5
    assert seen_scale(800, 600, "HIGH") == 1.0  # small images are seen whole


def test_levels_are_the_documented_token_counts():
    assert LEVEL_TOKENS == {"LOW": 280, "MEDIUM": 560, "HIGH": 1120, "ULTRA_HIGH": 2240}


@pytest.mark.parametrize(("size", "level", "tiled"), [
    ((1024, 768), "HIGH", False),
    ((2000, 1500), "HIGH", False),
    ((4000, 3000), "HIGH", True),
    ((6000, 4000), "HIGH", True),
    ((2000, 1500), "LOW", True),
])
def test_auto_tiles_only_when_the_long_side_is_over_twice_what_is_seen(size, level, tiled):
    assert needs_tiling(*size, level) is tiled
    assert (len(auto_grid(*size, level).tiles) > 1) is tiled


@given(st.integers(50, 9000), st.integers(50, 9000), st.integers(1, 6), st.integers(1, 6), st.integers(0, 400))
def test_tiles_cover_the_image_and_neighbours_overlap(width, height, rows, cols, overlap):
    grid = make_grid(width, height, rows, cols, overlap)
    assert len(grid.tiles) == rows * cols
    covered_x = sorted({(t.x0, t.x1) for t in grid.tiles})
    covered_y = sorted({(t.y0, t.y1) for t in grid.tiles})
    for spans, length in ((covered_x, width), (covered_y, height)):
        assert spans[0][0] == 0 and spans[-1][1] == length
        for (_, a1), (b0, _) in zip(spans, spans[1:], strict=False):
            assert a1 - b0 >= min(overlap, length // 2)  # overlap (or at least no gap)
        assert all(0 <= s0 < s1 <= length for s0, s1 in spans)


@given(st.integers(2500, 9000), st.integers(2500, 9000), st.sampled_from(["LOW", "MEDIUM", "HIGH", "ULTRA_HIGH"]))
def test_an_object_too_small_for_the_whole_image_is_whole_in_some_tile(width, height, level):
    grid = auto_grid(width, height, level)
    size = int(MIN_VISIBLE_PX / seen_scale(width, height, level))  # just below visible in the whole image
    for x in range(0, width - size, max(1, width // 37)):
        for y in range(0, height - size, max(1, height // 29)):
            assert any(t.x0 <= x and x + size <= t.x1 and t.y0 <= y and y + size <= t.y1 for t in grid.tiles)


def test_auto_tiles_are_seen_at_half_scale_or_better():
    for w, h in ((4000, 3000), (6000, 4000)):
        grid = auto_grid(w, h, "HIGH")
        t = grid.tiles[0]
        assert seen_scale(t.width, t.height, "HIGH") >= 0.5
        assert grid.overlap == min_overlap(w, h, "HIGH")


@pytest.mark.parametrize(("text", "parsed"), [("off", ("off", None)), ("", ("off", None)), ("AUTO", ("auto", None)),
                                              ("2x3", ("grid", (2, 3)))])
def test_parse_tiling(text, parsed):
    assert parse_tiling(text) == parsed


@pytest.mark.parametrize("text", ["0x2", "9x9", "2by3", "x3", "many"])
def test_parse_tiling_refuses(text):
    with pytest.raises(ValueError, match="RxC"):
        parse_tiling(text)


def test_plan_grid_off_is_the_whole_image():
    assert plan_grid(6000, 4000, "off", "HIGH").whole
    assert len(plan_grid(6000, 4000, "2x3", "HIGH").tiles) == 6
