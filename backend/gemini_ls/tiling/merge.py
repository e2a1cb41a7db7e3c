"""Answers of the tiles back on the image: map each region to image pixels, join the pieces of an
object cut by a tile border into one region, then drop duplicates seen in two overlapping tiles.

Nothing is invented: every output region is the union of input regions of one label (its
`sources`), each input lands in at most one output, and a union only grows to cover its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from .grid import Tile

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
Point = tuple[float, float]
# A region within this many px of a tile edge that is not an image edge was cut by it.
CUT_EPS_PX = 2.0
DUPLICATE_IOU = 0.5
# A region this much inside another of its label, seen in another tile, is that one seen again.
DUPLICATE_CONTAINMENT = 0.85


@dataclass(frozen=True, eq=False)
class MaskPatch:
    """A bool mask whose [0, 0] pixel is (x0, y0) of its frame."""

    x0: int
    y0: int
    bits: np.ndarray = field(repr=False)


@dataclass(frozen=True, eq=False)
class Region:
    """One answer of one tile (tile index `tile`, -1 for the whole image) in that tile's frame,
    or after `lift`, in the image's frame. `sources` names the inputs it was made from."""

    label: str
    box: Box
    score: float = 1.0
    tile: int = -1
    polygon: tuple[Point, ...] | None = None
    mask: MaskPatch | None = None
    sources: tuple[int, ...] = ()


def to_image_box(box: Box, tile: Tile) -> Box:
    return (box[0] + tile.x0, box[1] + tile.y0, box[2] + tile.x0, box[3] + tile.y0)


def to_tile_box(box: Box, tile: Tile) -> Box:
    return (box[0] - tile.x0, box[1] - tile.y0, box[2] - tile.x0, box[3] - tile.y0)


def lift(region: Region, tile: Tile) -> Region:
    """A tile's region in the image's pixel frame."""
    polygon = None if region.polygon is None else tuple((x + tile.x0, y + tile.y0) for x, y in region.polygon)
    mask = None if region.mask is None else MaskPatch(region.mask.x0 + tile.x0, region.mask.y0 + tile.y0, region.mask.bits)
    return replace(region, box=to_image_box(region.box, tile), polygon=polygon, mask=mask)


def area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection(a: Box, b: Box) -> float:
    return area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def iou(a: Box, b: Box) -> float:
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


Cut = tuple[str, float, int]  # axis ("x" or "y"), coordinate (image px), +1: the object goes on past it


def cut_edges(box: Box, tile: Tile, width: int, height: int) -> tuple[Cut, ...]:
    """The tile edges that cut a region: it touches them and they are inside the image (an image
    edge cuts nothing)."""
    edges: list[Cut] = []
    if tile.x0 > 0 and box[0] - tile.x0 <= CUT_EPS_PX:
        edges.append(("x", float(tile.x0), -1))
    if tile.x1 < width and tile.x1 - box[2] <= CUT_EPS_PX:
        edges.append(("x", float(tile.x1), +1))
    if tile.y0 > 0 and box[1] - tile.y0 <= CUT_EPS_PX:
        edges.append(("y", float(tile.y0), -1))
    if tile.y1 < height and tile.y1 - box[3] <= CUT_EPS_PX:
        edges.append(("y", float(tile.y1), +1))
    return tuple(edges)


def _continues_past(piece: Box, cuts: tuple[Cut, ...], other: Box) -> bool:
    """`other` overlaps `piece` and reaches past a border that cut `piece`: both are parts of one
    object that border cut."""
    if intersection(piece, other) <= 0:
        return False
    for axis, at, direction in cuts:
        lo, hi = (other[0], other[2]) if axis == "x" else (other[1], other[3])
        if (direction > 0 and hi > at + CUT_EPS_PX) or (direction < 0 and lo < at - CUT_EPS_PX):
            return True
    return False


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def join_cut(regions: list[Region], tiles: tuple[Tile, ...], width: int, height: int) -> list[Region]:
    """Join, per label, the regions (image frame) of different tiles that are pieces of one object
    cut by a tile border. Regions of the whole image (tile -1) join nothing but may absorb pieces."""
    parent = list(range(len(regions)))
    cuts = [cut_edges(r.box, tiles[r.tile], width, height) if r.tile >= 0 else () for r in regions]
    for i, a in enumerate(regions):
        if not cuts[i]:
            continue
        for j, b in enumerate(regions):
            if i == j or a.label != b.label or a.tile == b.tile:
                continue
            if _continues_past(a.box, cuts[i], b.box):
                parent[_find(parent, i)] = _find(parent, j)
    groups: dict[int, list[int]] = {}
    for i in range(len(regions)):
        groups.setdefault(_find(parent, i), []).append(i)
    return [union([regions[i] for i in members]) for members in sorted(groups.values())]


def union(parts: list[Region]) -> Region:
    """One region covering `parts` (same label): union box, OR of masks, outline of the union of
    polygons; the highest score."""
    if len(parts) == 1:
        return parts[0]
    box = (min(p.box[0] for p in parts), min(p.box[1] for p in parts), max(p.box[2] for p in parts), max(p.box[3] for p in parts))
    best = max(parts, key=lambda p: p.score)
    masks = [p.mask for p in parts if p.mask is not None]
    polygons = [p.polygon for p in parts if p.polygon]
    return Region(
        label=best.label,
        box=box,
        score=best.score,
        tile=best.tile,
        polygon=polygon_union(polygons) if polygons else None,
        mask=_mask_union(masks) if masks else None,
        sources=tuple(sorted(s for p in parts for s in p.sources)),
    )


def _mask_union(masks: list[MaskPatch]) -> MaskPatch:
    x0 = min(m.x0 for m in masks)
    y0 = min(m.y0 for m in masks)
    x1 = max(m.x0 + m.bits.shape[1] for m in masks)
    y1 = max(m.y0 + m.bits.shape[0] for m in masks)
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for m in masks:
        h, w = m.bits.shape
        canvas[m.y0 - y0:m.y0 - y0 + h, m.x0 - x0:m.x0 - x0 + w] |= m.bits.astype(bool)
    return MaskPatch(x0, y0, canvas)


def polygon_union(polygons: list[tuple[Point, ...]]) -> tuple[Point, ...]:
    """Outline of the union, drawn at 1 px: the largest outer contour (the pieces of one object
    overlap in the tiles' overlap, so the union is one piece)."""
    x0 = int(np.floor(min(x for poly in polygons for x, _ in poly)))
    y0 = int(np.floor(min(y for poly in polygons for _, y in poly)))
    x1 = int(np.ceil(max(x for poly in polygons for x, _ in poly)))
    y1 = int(np.ceil(max(y for poly in polygons for _, y in poly)))
    canvas = np.zeros((y1 - y0 + 3, x1 - x0 + 3), dtype=np.uint8)
    for poly in polygons:
        pts = np.array([[round(x - x0) + 1, round(y - y0) + 1] for x, y in poly], dtype=np.int32)
        cv2.fillPoly(canvas, [pts], 1)
    contours, _ = cv2.findContours(canvas, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    largest = max(contours, key=cv2.contourArea).reshape(-1, 2)
    return tuple((float(x + x0 - 1), float(y + y0 - 1)) for x, y in largest)


def suppress_duplicates(regions: list[Region]) -> list[Region]:
    """Per-label NMS: keep the higher-scored (then larger) of two regions of one label that overlap
    by DUPLICATE_IOU, or where one lies DUPLICATE_CONTAINMENT inside the other."""
    order = sorted(range(len(regions)), key=lambda i: (-regions[i].score, -area(regions[i].box), i))
    kept: list[Region] = []
    for i in order:
        r = regions[i]
        if any(k.label == r.label and _duplicate(k.box, r.box) for k in kept):
            continue
        kept.append(r)
    return kept


def _duplicate(a: Box, b: Box) -> bool:
    inter = intersection(a, b)
    smaller = min(area(a), area(b))
    return iou(a, b) >= DUPLICATE_IOU or (smaller > 0 and inter / smaller >= DUPLICATE_CONTAINMENT)


def merge(per_tile: list[list[Region]], tiles: tuple[Tile, ...], width: int, height: int,
          whole: list[Region] | None = None) -> list[Region]:
    """All tiles' answers (each in its tile's frame, list i for tiles[i]) plus, optionally, the
    whole image's answers (image frame) -> one set of regions in the image's frame."""
    lifted: list[Region] = []
    for index, (tile, answers) in enumerate(zip(tiles, per_tile, strict=True)):
        for r in answers:
            lifted.append(replace(lift(r, tile), tile=index, sources=(len(lifted),)))
    for r in whole or []:
        lifted.append(replace(r, tile=-1, sources=(len(lifted),)))
    return suppress_duplicates(join_cut(lifted, tiles, width, height))
