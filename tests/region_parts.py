"""Helpers for regions made of several results sharing one id (a shape + its <Labels> + per-region
answers, Label Studio's OCR form): group them, and match each region to a scene object by pixels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gemini_ls.emulator.scenes import Scene, SceneObject, box_iou
from tests.helpers import brush_mask, polygon_mask, rect_pixels

SHAPE_TYPES = ("rectangle", "polygon", "ellipse", "keypoint", "brush",
               "rectanglelabels", "polygonlabels", "ellipselabels", "keypointlabels", "brushlabels")


def regions_by_id(result: Sequence[Mapping]) -> dict[str, dict[str, Mapping]]:
    """id -> {from_name: result}: one entry per region, each of its results by control."""
    out: dict[str, dict[str, Mapping]] = {}
    for r in result:
        parts = out.setdefault(r["id"], {})
        assert r["from_name"] not in parts, f"two results of {r['from_name']} in region {r['id']}"
        parts[r["from_name"]] = r
    return out


def shape_of(parts: Mapping[str, Mapping]) -> Mapping:
    (shape,) = [r for r in parts.values() if r["type"] in SHAPE_TYPES]
    return shape


def pixel_box(region: Mapping) -> tuple[float, float, float, float]:
    """The region's bounding box in image pixels, whatever its shape."""
    v, w, h = region["value"], region["original_width"], region["original_height"]
    kind = region["type"].removesuffix("labels")
    if kind == "rectangle":
        return rect_pixels(region)
    if kind == "ellipse":
        cx, cy, rx, ry = v["x"] / 100 * w, v["y"] / 100 * h, v["radiusX"] / 100 * w, v["radiusY"] / 100 * h
        return (cx - rx, cy - ry, cx + rx, cy + ry)
    if kind == "keypoint":
        x, y = v["x"] / 100 * w, v["y"] / 100 * h
        return (x, y, x, y)
    mask = brush_mask(region) if kind == "brush" else polygon_mask(region)
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def object_of(region: Mapping, scene: Scene) -> tuple[SceneObject, float]:
    """The scene object the region covers and how well (box IoU; for a point, 1.0 when inside)."""
    box = pixel_box(region)
    if box[0] == box[2]:  # a keypoint
        inside = [o for o in scene.objects if o.box[0] <= box[0] < o.box[2] and o.box[1] <= box[1] < o.box[3]]
        assert inside, (box, [o.box for o in scene.objects])
        return inside[0], 1.0
    best = max(scene.objects, key=lambda o: box_iou(box, o.box))
    return best, box_iou(box, best.box)
