"""Tile grid: what the model sees of an image at a media resolution, and how to cut a photo so small
objects reach it at a scale it can see.

Gemini 3 bills (and sees) an image at a fixed token budget per media-resolution level
(docs/models.md, "Media resolution"). We model the pixels it looks at as TOKEN_PIXELS per token:
28 x 28 px a token puts a 6000x4000 photo at HIGH (1120 tokens) at a scale of 0.19, so a 28 px
object is ~5 px, the figure issue #24 measured. The emulator scales with the same table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..detections import PixelBox

# Tokens per image for each media-resolution level on Gemini 3 (HIGH is the default for images;
# ULTRA_HIGH exists per part only).
LEVEL_TOKENS = {"LOW": 280, "MEDIUM": 560, "HIGH": 1120, "ULTRA_HIGH": 2240}
DEFAULT_LEVEL = "HIGH"
TOKEN_PIXELS = 28 * 28
# An object narrower than this at the scale the model sees is treated as invisible to it.
MIN_VISIBLE_PX = 10
# auto cuts tiles small enough that each is seen at least at this scale (1.0 = full resolution):
# a 20 px object then reaches the model at >= 10 px, MIN_VISIBLE_PX.
AUTO_MIN_TILE_SCALE = 0.5
MAX_TILES = 64  # a grid beyond this is a configuration mistake, not a request plan


# A tile is a half-open pixel rectangle of the image in its full-resolution frame.
Tile = PixelBox


@dataclass(frozen=True)
class Grid:
    """A rows x cols cut of an image of width x height with overlapping tiles (row-major)."""

    width: int
    height: int
    rows: int
    cols: int
    overlap: int
    tiles: tuple[Tile, ...]

    @property
    def whole(self) -> bool:
        return len(self.tiles) == 1


def level_tokens(level: str | None) -> int:
    return LEVEL_TOKENS[(level or DEFAULT_LEVEL).upper()]


def seen_scale(width: int, height: int, level: str | None) -> float:
    """The factor (<= 1) by which the model shrinks a width x height image at this level."""
    budget = level_tokens(level) * TOKEN_PIXELS
    return min(1.0, math.sqrt(budget / max(1, width * height)))


def needs_tiling(width: int, height: int, level: str | None) -> bool:
    """auto's rule: tile only when the long side is more than twice what the model sees of it."""
    long_side = max(width, height)
    return long_side > 2 * long_side * seen_scale(width, height, level)


def min_overlap(width: int, height: int, level: str | None) -> int:
    """Overlap (px) such that every object too small to be seen in the whole image lies whole in
    at least one tile: such an object is narrower than MIN_VISIBLE_PX / scale, and two tiles that
    overlap by at least that much contain, between them, every span of that length."""
    return math.ceil(MIN_VISIBLE_PX / seen_scale(width, height, level))


def _cuts(length: int, parts: int, overlap: int) -> list[tuple[int, int]]:
    """parts spans covering [0, length), neighbours overlapping by >= overlap, sizes within 1 px."""
    if parts <= 1:
        return [(0, length)]
    overlap = min(overlap, length // 2)
    # Span size s with parts * s - (parts - 1) * overlap >= length.
    size = min(length, math.ceil((length + (parts - 1) * overlap) / parts))
    spans = []
    for i in range(parts):
        start = round(i * (length - size) / (parts - 1))
        spans.append((start, start + size))
    return spans


def make_grid(width: int, height: int, rows: int, cols: int, overlap: int) -> Grid:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height}")
    if not (1 <= rows and 1 <= cols and rows * cols <= MAX_TILES):
        raise ValueError(f"grid {rows}x{cols}: 1 to {MAX_TILES} tiles")
    xs = _cuts(width, cols, overlap)
    ys = _cuts(height, rows, overlap)
    tiles = tuple(Tile(x0, y0, x1, y1) for (y0, y1) in ys for (x0, x1) in xs)
    return Grid(width, height, rows, cols, overlap if len(tiles) > 1 else 0, tiles)


def auto_grid(width: int, height: int, level: str | None) -> Grid:
    """The smallest grid whose tiles the model sees at >= AUTO_MIN_TILE_SCALE; one tile (the whole
    image) when needs_tiling says no."""
    if not needs_tiling(width, height, level):
        return make_grid(width, height, 1, 1, 0)
    overlap = min_overlap(width, height, level)
    budget = level_tokens(level) * TOKEN_PIXELS / AUTO_MIN_TILE_SCALE**2  # pixels a tile may have
    best: Grid | None = None
    for n in range(2, MAX_TILES + 1):
        for rows in range(1, n + 1):
            if n % rows:
                continue
            grid = make_grid(width, height, rows, n // rows, overlap)
            tile = grid.tiles[0]
            if tile.width * tile.height <= budget and (best is None or _squareness(grid) < _squareness(best)):
                best = grid
        if best is not None:
            return best
    return make_grid(width, height, *_squarest(width, height, MAX_TILES), overlap)


def _squareness(grid: Grid) -> float:
    t = grid.tiles[0]
    return max(t.width, t.height) / max(1, min(t.width, t.height))


def _squarest(width: int, height: int, n: int) -> tuple[int, int]:
    rows = max(1, round(math.sqrt(n * height / width)))
    return rows, max(1, n // rows)


def parse_tiling(value: str) -> tuple[str, tuple[int, int] | None]:
    """TILING / model_tiling: 'off', 'auto' or 'RxC' (e.g. '2x3'). Returns (mode, (rows, cols))."""
    text = value.strip().lower()
    if text in ("", "off"):
        return "off", None
    if text == "auto":
        return "auto", None
    rows_text, sep, cols_text = text.partition("x")
    if sep and rows_text.isdigit() and cols_text.isdigit():
        rows, cols = int(rows_text), int(cols_text)
        if 1 <= rows and 1 <= cols and rows * cols <= MAX_TILES:
            return "grid", (rows, cols)
    raise ValueError(f"tiling {value!r}: off, auto or RxC with 1 to {MAX_TILES} tiles")


def plan_grid(width: int, height: int, tiling: str, level: str | None) -> Grid:
    """The grid a spatial request uses under a TILING setting."""
    mode, shape = parse_tiling(tiling)
    if mode == "off":
        return make_grid(width, height, 1, 1, 0)
    if mode == "auto":
        return auto_grid(width, height, level)
    assert shape is not None
    return make_grid(width, height, shape[0], shape[1], min_overlap(width, height, level))
