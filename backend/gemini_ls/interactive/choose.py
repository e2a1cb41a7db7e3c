"""Which of Gemini's entries is the object the annotator pointed at (issue 24 item 6).

A click or box prompt asks for exactly ONE object, but a model may answer several entries of the
label (two red objects, the click on the smaller one), in any order. Keeping the first entry gives
the annotator the wrong object; this module checks each entry's geometry against the annotator's:

- clicks: the entry whose mask (probability map or polygon; the box when it has neither) holds the
  most positive points and none of the negative ones; ties keep Gemini's order (its ranking).
  Fallback, when no mask holds a positive point (a thin or slightly offset mask, a click on the
  edge): the entry whose BOX holds the most positive points and whose mask holds no negative one,
  the smallest such box (the most specific object there).
- box: the entry whose box overlaps the drawn box best (IoU), none of its mask under a negative click.
- otherwise a clear "no object under the click/box" outcome: nothing is returned, rather than an
  object somewhere else.

Everything is in the 0-1000 frame of the whole image (the crop answer already mapped back,
crop.py), where Gemini's boxes and polygons live; the annotator's percent points convert exactly.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..detections import NORM, Detection, NormBox, PolygonMask

DEFAULT_MASK_THRESHOLD = 127  # the labelconfig default (model_mask_threshold)


class Why(str, enum.Enum):
    POINTS = "points"  # a mask holds the positive points
    BOX_FALLBACK = "box_fallback"  # no mask does; a box holds them
    BOX = "box"  # the best overlap with the drawn box
    NONE = "none"  # no entry is under the click / in the box


@dataclass(frozen=True)
class Point:
    """An annotator's click in the 0-1000 frame of the whole image."""

    y: float
    x: float
    positive: bool = True


@dataclass(frozen=True)
class Choice:
    index: int | None  # into the candidates; None when no entry is under the click / in the box
    why: Why

    @property
    def message(self) -> str | None:
        return {Why.NONE: "no object under the annotator's click or box in the model's answer"}.get(self.why)


def _in_box(box: NormBox, p: Point) -> bool:
    return box.xmin <= p.x <= box.xmax and box.ymin <= p.y <= box.ymax


def _in_ring(ring: Sequence[tuple[float, float]], p: Point) -> bool:
    """Even-odd ray casting; (x, y) vertices."""
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % n]
        if (y1 > p.y) != (y2 > p.y) and p.x < x1 + (p.y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _in_polygon(polygon: PolygonMask, p: Point) -> bool:
    return any(len(ring) >= 3 and _in_ring(ring, p) for ring in polygon.rings)  # rings are parts: a union


def _in_mask(mask: np.ndarray, box: NormBox, p: Point, threshold: int) -> bool:
    """The probability map covers `box` at its own resolution; the pixel under the point."""
    if not _in_box(box, p) or mask.ndim != 2 or mask.size == 0:
        return False
    h, w = mask.shape
    col = min(w - 1, int((p.x - box.xmin) / max(box.xmax - box.xmin, 1e-9) * w))
    row = min(h - 1, int((p.y - box.ymin) / max(box.ymax - box.ymin, 1e-9) * h))
    return bool(mask[row, col] > threshold)


def holds(det: Detection, p: Point, threshold: int = DEFAULT_MASK_THRESHOLD) -> bool:
    """The entry's own pixels are under the point: its mask, else its polygon, else its box."""
    if det.box is None:
        return False
    if det.mask is not None:
        return _in_mask(det.mask, det.box, p, threshold)
    if det.polygon is not None:
        return _in_polygon(det.polygon, p)
    return _in_box(det.box, p)


def _iou(a: NormBox, b: NormBox) -> float:
    inter = (max(0.0, min(a.xmax, b.xmax) - max(a.xmin, b.xmin))
             * max(0.0, min(a.ymax, b.ymax) - max(a.ymin, b.ymin)))
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def choose(candidates: Sequence[Detection], points: Sequence[Point], box: NormBox | None = None, *,
           threshold: int = DEFAULT_MASK_THRESHOLD) -> Choice:
    """The entry the annotator meant (see the module doc); a drawn box wins over points, as in context.py."""
    negatives = [p for p in points if not p.positive]
    positives = [p for p in points if p.positive]
    usable = [(i, d.box) for i, d in enumerate(candidates)
              if d.box is not None and not any(holds(d, p, threshold) for p in negatives)]
    if box is not None:
        scored = [(_iou(b, box), -k, i) for k, (i, b) in enumerate(usable)]
        best = max(scored, default=None)
        return Choice(best[2], Why.BOX) if best is not None and best[0] > 0 else Choice(None, Why.NONE)
    hits = [(sum(holds(candidates[i], p, threshold) for p in positives), -k, i) for k, (i, _) in enumerate(usable)]
    top = max(hits, default=None)
    if top is not None and top[0] > 0:
        return Choice(top[2], Why.POINTS)
    loose = [(sum(_in_box(b, p) for p in positives), -b.area, -k, i) for k, (i, b) in enumerate(usable)]
    fallback = max(loose, default=None)
    if fallback is not None and fallback[0] > 0:
        return Choice(fallback[3], Why.BOX_FALLBACK)
    return Choice(None, Why.NONE)


def percent_point(x: float, y: float, positive: bool = True) -> Point:
    """An annotator's click (percent of the image, context.py) in the 0-1000 frame."""
    return Point(y / 100 * NORM, x / 100 * NORM, positive)


def percent_box(x: float, y: float, width: float, height: float) -> NormBox | None:
    return NormBox.from_corners(y / 100 * NORM, x / 100 * NORM, (y + height) / 100 * NORM, (x + width) / 100 * NORM)
