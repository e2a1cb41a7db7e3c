"""Masks -> polygons (pixel geometry), and the PolygonLabels handler.

Each outer contour of the mask (cv2.findContours, RETR_EXTERNAL) becomes one polygon, so a
mask in several parts gives several PolygonLabels regions with the same label and score;
holes are not representable in a Label Studio polygon and are filled. Contours are simplified
with Douglas-Peucker (cv2.approxPolyDP, tolerance in pixels).

Coordinates: cv2 contours run through pixel indices; vertices are returned at pixel centres
(index + 0.5) in continuous image coordinates (pixel i spans [i, i+1)), so that in percent a
polygon is not shifted half a pixel up-left from the brush mask it came from.

A polygon mask (3.x, Robotics-ER 1.6: `Detection.polygon`) is passed straight through: each ring,
scaled to the image's pixels, simplified with the same tolerance, is one polygon; rings enclosing
less than model_min_area pixels are dropped. No round trip through a raster.

A detection without a mask gives no polygon (counted as `no_mask`): see handler.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from ..detections import Detection, DropReason, ImageMeta, ParsedAnswer, PixelBox, PolygonMask
from ..labelconfig import ControlSpec
from .handler import EMPTY_MASK, Conversion
from .masks import masked_detections, polygon_pixels
from .result import RegionIds, clamp_percent, image_result, pixel_box_key
from .reverse import NOTHING, detection, label_of, norm_box, percent_box, value_of

Polygon = list[tuple[float, float]]


def mask_to_polygons(region: np.ndarray, box: PixelBox, tolerance: float, min_area: int) -> list[Polygon]:
    """Outer outlines of `region` (box-sized bool) as polygons in full-image pixel coordinates.

    Parts covering fewer than `min_area` pixels are dropped, as are outlines that simplify to
    fewer than 3 points.
    """
    if region.shape != (box.height, box.width):
        raise ValueError(f"region shape {region.shape} does not match box {box}")
    binary = region.view(np.uint8) if region.dtype == np.bool_ else (region != 0).view(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if _pixel_count(contour) < max(min_area, 1):
            continue
        simplified = cv2.approxPolyDP(contour, tolerance, True) if tolerance > 0 else contour
        points = simplified.reshape(-1, 2).astype(np.float64)
        if len(points) < 3:
            continue
        points += (box.x0 + 0.5, box.y0 + 0.5)
        polygons.append([(float(x), float(y)) for x, y in points])
    return polygons


def outline_polygons(polygon: PolygonMask, image: ImageMeta, tolerance: float, min_area: int) -> list[Polygon]:
    """A polygon mask's rings in full-image pixel coordinates, simplified; small or degenerate ones dropped."""
    out = []
    for ring in polygon_pixels(polygon, image.width, image.height):
        if cv2.contourArea(ring.astype(np.float32)) < max(min_area, 1):
            continue
        points = ring.astype(np.float32).reshape(-1, 1, 2)
        simplified = cv2.approxPolyDP(points, tolerance, True) if tolerance > 0 else points
        flat = simplified.reshape(-1, 2)
        if len(flat) >= 3:
            out.append([(float(x), float(y)) for x, y in flat])
    return out


def _pixel_count(contour: np.ndarray) -> float:
    """Pixels inside an outer contour (its boundary included), by Pick's theorem.

    A contour through pixel centres encloses A = I + B/2 - 1 (shoelace), with B boundary
    lattice points; the pixel count is I + B = A + B/2 + 1. CHAIN_APPROX_SIMPLE keeps only
    straight or diagonal runs, so each segment holds max(|dx|, |dy|) lattice steps. Exact for
    hole-free parts (and for 1-pixel lines, whose contour runs out and back), without
    rasterising anything.
    """
    pts = contour.reshape(-1, 2).astype(np.int64)
    steps = np.abs(np.roll(pts, -1, axis=0) - pts).max(axis=1).sum()
    return cv2.contourArea(contour) + steps / 2 + 1


def polygon_percent(polygon: Polygon, image: ImageMeta) -> list[list[float]]:
    return [[clamp_percent(x / image.width * 100), clamp_percent(y / image.height * 100)] for x, y in polygon]


class PolygonHandler:
    """`tag`: PolygonLabels, or the bare shape tool whose regions carry a <Labels> (perregion.py splits them)."""

    def __init__(self, tag: str = "PolygonLabels") -> None:
        self.tag = tag

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        settings = control.settings
        dropped: Counter[DropReason] = Counter()
        ids = RegionIds(control, image)
        results = []
        sources: list[Detection] = []
        for det, box, region in masked_detections(control, image, answer, dropped):
            if det.mask is None and det.polygon is not None:
                polygons = outline_polygons(det.polygon, image, settings.polygon_tolerance, settings.min_area)
            else:
                polygons = mask_to_polygons(region, box, settings.polygon_tolerance, settings.min_area)
            if not polygons:
                dropped[EMPTY_MASK] += 1
                continue
            for part, polygon in enumerate(polygons):
                points = polygon_percent(polygon, image)
                value = {"points": points, "closed": True, "polygonlabels": [det.label]}
                rid = ids.make(det.label, pixel_box_key(box), part, points[0])
                results.append(image_result(rid, control, image, value, det.score))
                sources.append(det)
        return Conversion.of(results, dropped, sources)

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        """The polygon as a polygon mask (one ring, 0-1000) with its box; a polygon of two points
        (a line) keeps its box and covers no pixel."""
        value = value_of(result)
        label = label_of(value) if value is not None else None
        if value is None or label is None:
            return NOTHING
        points = [(float(p[0]), float(p[1])) for p in value.get("points") or () if isinstance(p, (list, tuple)) and len(p) >= 2]
        box = percent_box(points)
        if box is None:
            return NOTHING
        if len(points) < 3:
            return detection(label, image_index, box=norm_box(box), mask=np.zeros((1, 1), np.uint8))
        ring = tuple((x * 10, y * 10) for x, y in points)
        return detection(label, image_index, box=norm_box(box), polygon=PolygonMask(rings=(ring,)))
