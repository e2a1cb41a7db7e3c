"""A spatial request answered tile by tile: cut the image per its grid (cut.py), ask each tile,
put each tile's detections back on the image and merge them (merge.py) into one ParsedAnswer, as if
the whole image had been answered at full resolution.

A region whose merge group has one member is that detection, only mapped to the image's frame; a
group of pieces (an object cut by a tile border) becomes one detection: the union of their boxes,
of their polygon rings or of their thresholded masks, with the best score. Nothing is invented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np

from ..detections import NORM, Detection, DropReason, NormBox, ParsedAnswer, PolygonMask
from ..images.prepare import PreparedImage
from .cut import Frame, answer_to_image, cut
from .grid import Grid
from .merge import MaskPatch, Region, merge, polygon_union
from .textlines import joined_attributes, line_groups

Ask = Callable[[int, PreparedImage], ParsedAnswer]  # (tile index, the tile as sent) -> its answer
MASK_LEVEL = 127  # a probability map's pixel belongs to the object from here (the converters' default)


def tile_frames(grid: Grid) -> tuple[Frame, ...]:
    return tuple(Frame(t.x0, t.y0, t.x1, t.y1, grid.width, grid.height) for t in grid.tiles)


def answer_tiles(pixels: np.ndarray, grid: Grid, ask: Ask, *, name: str, max_side: int, source: str) -> ParsedAnswer:
    """Every tile of `grid` cut from `pixels` (the oriented full-resolution image), asked in tile
    order, merged. `source`: the image's sha256 (tiles are keyed by it and their rectangle)."""
    answers = []
    for index, frame in enumerate(tile_frames(grid)):
        answers.append(ask(index, cut(pixels, frame, name=name, max_side=max_side, source=source)))
    return merge_answers(answers, grid)


def _pixel_box(box: NormBox, width: int, height: int) -> tuple[float, float, float, float]:
    return (box.xmin / NORM * width, box.ymin / NORM * height, box.xmax / NORM * width, box.ymax / NORM * height)


def _mask_patch(det: Detection, width: int, height: int) -> MaskPatch | None:
    """A probability map (box-relative) as a bool mask at the image's pixels."""
    if det.mask is None or det.box is None:
        return None
    px = det.box.to_pixels(width, height)
    bits = cv2.resize(det.mask.astype(np.uint8), (px.width, px.height), interpolation=cv2.INTER_LINEAR) >= MASK_LEVEL
    return MaskPatch(px.x0, px.y0, bits)


def merge_answers(answers: list[ParsedAnswer], grid: Grid, *, text: bool = False) -> ParsedAnswer:
    """The tiles' answers (answers[i] about grid.tiles[i], in 0-1000 of that tile) -> one answer in
    0-1000 of the image. `text`: the plan reads text, and the pieces of a line a vertical border cut
    are joined with their transcriptions (textlines.py)."""
    width, height = grid.width, grid.height
    frames = tile_frames(grid)
    placed: list[Detection] = []  # every detection with a box, in the image's frame, in merge order
    per_tile: list[list[Region]] = []
    loose: list[Detection] = []  # no box (points): nothing to merge on, kept as they are
    for frame, answer in zip(frames, answers, strict=True):
        regions = []
        for det in answer_to_image(answer, frame).detections:
            if det.box is None:
                loose.append(det)
                continue
            x0, y0, x1, y1 = _pixel_box(det.box, width, height)
            # merge.merge lifts by the tile's origin: hand it the box in the tile's frame
            regions.append(Region(label=det.label, box=(x0 - frame.x0, y0 - frame.y0, x1 - frame.x0, y1 - frame.y0),
                                  score=det.score if det.score is not None else 1.0))
            placed.append(det)
        per_tile.append(regions)
    merged = merge(per_tile, grid.tiles, width, height)
    # reading text, the pieces' transcriptions are joined (textlines.py), not one piece's kept
    detections = [_joined([placed[s] for s in region.sources], width, height, text) for region in merged]
    if text:  # pieces of a line too far from the border for merge.py's rule
        detections = [_joined(group, width, height, text) for group in line_groups(detections, grid)]
    dropped: dict[DropReason, int] = {}
    for answer in answers:
        for reason, count in answer.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + count
    truncated = [a for a in answers if a.truncated]
    return ParsedAnswer(
        detections=tuple(detections + loose), dropped=dropped, truncated=bool(truncated),
        finish_reason=truncated[0].finish_reason if truncated else (answers[0].finish_reason if answers else None),
    )


def _joined(parts: list[Detection], width: int, height: int, text: bool = False) -> Detection:
    """One detection for the pieces of one object (one piece: itself): the best piece's label, score
    and per-region answers, or with `text` the pieces' answers joined (textlines.py)."""
    if len(parts) == 1:
        return parts[0]
    if text:
        return replace(_joined(parts, width, height), attributes=joined_attributes(parts))
    best = max(parts, key=lambda d: d.score if d.score is not None else 1.0)
    boxes = [d.box for d in parts if d.box is not None]
    box = NormBox(ymin=min(b.ymin for b in boxes), xmin=min(b.xmin for b in boxes),
                  ymax=max(b.ymax for b in boxes), xmax=max(b.xmax for b in boxes))
    polygon = None
    rings = [[(x / NORM * width, y / NORM * height) for x, y in ring]
             for d in parts if d.polygon is not None for ring in d.polygon.rings]
    if rings:
        outline = polygon_union([tuple(r) for r in rings])
        polygon = PolygonMask((tuple((x / width * NORM, y / height * NORM) for x, y in outline),))
    mask = None
    patches = [p for p in (_mask_patch(d, width, height) for d in parts) if p is not None]
    if patches:
        px = box.to_pixels(width, height)
        canvas = np.zeros((px.height, px.width), dtype=np.uint8)
        for patch in patches:
            ph, pw = patch.bits.shape
            # the patch's place inside the union box, clipped to it
            ox, oy = patch.x0 - px.x0, patch.y0 - px.y0
            sx0, sy0 = max(0, -ox), max(0, -oy)
            dx0, dy0 = max(0, ox), max(0, oy)
            w = min(pw - sx0, px.width - dx0)
            h = min(ph - sy0, px.height - dy0)
            if w > 0 and h > 0:
                canvas[dy0:dy0 + h, dx0:dx0 + w] |= patch.bits[sy0:sy0 + h, sx0:sx0 + w].astype(np.uint8)
        mask = canvas * np.uint8(255)
    return replace(best, box=box, polygon=polygon, mask=mask, image_index=0)
