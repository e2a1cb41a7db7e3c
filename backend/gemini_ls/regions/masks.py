"""Gemini's mask, in either variant, -> a boolean mask the size of the detection's pixel box.

2.5-family models send each mask as a (typically 256x256) uint8 probability map covering only the
box (docs/gemini-facts.md#spatial-output): resize it bilinearly to the box in the original image, then keep
values above the threshold. 3.x and Robotics-ER 1.6 send outlines in image coordinates
(`PolygonMask`): they are rasterized at the image's real size inside the outlines' own bounds (a
pixel belongs to the mask when its centre lies inside a ring). Only box-sized arrays are ever
built, never the full image.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import cv2
import numpy as np

from ..detections import NORM, Detection, DropReason, ImageMeta, ParsedAnswer, PixelBox, PolygonMask
from ..labelconfig import ControlSpec
from .handler import NO_MASK
from .selection import select


def mask_region(prob: np.ndarray, box: PixelBox, threshold: int = 127) -> np.ndarray:
    """Bool array of box.height x box.width: True where the resized probability > threshold."""
    if prob.ndim == 3 and prob.shape[2] == 1:
        prob = prob[:, :, 0]
    if prob.ndim != 2 or prob.size == 0:
        raise ValueError(f"probability map must be a non-empty 2-D array, got shape {prob.shape}")
    if prob.dtype != np.uint8:
        prob = np.clip(prob, 0, 255).astype(np.uint8)
    # cv2 (half-pixel centres, like PIL's BILINEAR when enlarging) is ~10x faster than PIL here.
    # For shrinking, INTER_AREA averages instead of sampling so thin parts do not alias away.
    shrinking = box.width < prob.shape[1] and box.height < prob.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(prob, (box.width, box.height), interpolation=interpolation)
    # In place: a second box-sized buffer costs more in page faults than the threshold itself.
    # maxval 1 gives 0/1 bytes, which are valid numpy bools: viewing avoids another pass.
    cv2.threshold(resized, threshold, 1, cv2.THRESH_BINARY, dst=resized)
    return resized.reshape(box.height, box.width).view(np.bool_)


def shared_mask_region(memo: dict, prob: np.ndarray, box: PixelBox, threshold: int = 127) -> np.ndarray:
    """`mask_region`, computed once per (map, box, threshold) for all controls converting one answer.

    `memo` lives on the ParsedAnswer, which keeps every map alive while it is in use, so the map's
    id() cannot be reused by another array during the conversion. The result is read-only.
    """
    key = (id(prob), box, threshold)
    region = memo.get(key)
    if region is None:
        region = mask_region(prob, box, threshold)
        region.flags.writeable = False
        memo[key] = region
    return region


SUBPIXEL_BITS = 8  # cv2.fillPoly fixed-point precision: vertices kept to 1/256 px


def polygon_pixels(polygon: PolygonMask, width: int, height: int) -> list[np.ndarray]:
    """Each ring in continuous pixel coordinates of a width x height image (pixel i spans [i, i+1))."""
    scale = np.array([width / NORM, height / NORM])
    return [np.asarray(ring, dtype=np.float64) * scale for ring in polygon.rings]


def polygon_box(rings: list[np.ndarray], width: int, height: int) -> PixelBox:
    """The pixels whose centres the rings can reach, clipped to the image (at least 1x1)."""
    points = np.concatenate(rings)
    x0 = min(max(int(np.floor(points[:, 0].min() - 0.5)), 0), width - 1)
    y0 = min(max(int(np.floor(points[:, 1].min() - 0.5)), 0), height - 1)
    x1 = min(max(int(np.ceil(points[:, 0].max() + 0.5)), x0 + 1), width)
    y1 = min(max(int(np.ceil(points[:, 1].max() + 0.5)), y0 + 1), height)
    return PixelBox(x0, y0, x1, y1)


def rasterize(rings: list[np.ndarray], box: PixelBox) -> np.ndarray:
    """Bool array of box.height x box.width: the union of the rings, by pixel centre.

    cv2 puts integer coordinates on pixel centres, so a continuous vertex v lands at v - 0.5; the
    sub-pixel position is kept in fixed point rather than rounded to whole pixels.
    """
    canvas = np.zeros((box.height, box.width), dtype=np.uint8)
    factor = float(1 << SUBPIXEL_BITS)
    for ring in rings:
        # One call per ring: given several contours at once fillPoly applies even-odd, so
        # overlapping parts would cancel out; the rings are parts of one object, a union.
        shifted = np.rint((ring - (box.x0 + 0.5, box.y0 + 0.5)) * factor).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(canvas, [shifted], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return canvas.view(np.bool_)


def shared_polygon_region(memo: dict, polygon: PolygonMask, image: ImageMeta) -> tuple[PixelBox, np.ndarray]:
    """(pixel box, box-sized mask) of a polygon mask, computed once for all controls of one answer."""
    key = (id(polygon), image.width, image.height)
    found = memo.get(key)
    if found is None:
        rings = polygon_pixels(polygon, image.width, image.height)
        box = polygon_box(rings, image.width, image.height)
        region = rasterize(rings, box)
        region.flags.writeable = False
        found = memo[key] = (box, region)
    return found


def _has_mask(det: Detection) -> DropReason | None:
    return None if det.has_mask else NO_MASK


def masked_detections(
    control: ControlSpec, image: ImageMeta, answer: ParsedAnswer, dropped: Counter[DropReason]
) -> Iterator[tuple[Detection, PixelBox, np.ndarray]]:
    """The control's detections that carry a usable mask, each with its pixel box and box-sized mask.

    Shared by the brush and polygon converters; detections without a mask are counted in `dropped`.
    A polygon mask's box is the polygon's own pixel bounds (model_mask_threshold does not apply).
    """
    selection = select(control, image, answer, _has_mask)
    dropped.update(selection.dropped)
    for det in selection.detections:
        if det.mask is None and det.polygon is not None:
            yield det, *shared_polygon_region(answer.derived, det.polygon, image)
            continue
        assert det.box is not None and det.mask is not None  # _has_mask
        box = det.box.to_pixels(image.width, image.height)
        yield det, box, shared_mask_region(answer.derived, det.mask, box, control.settings.mask_threshold)
