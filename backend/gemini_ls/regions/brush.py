"""BrushLabels handler: each detection's mask as a Label Studio brush RLE region.

The probability map is resized to the detection's pixel box and thresholded (masks.py), then
encoded straight from that box (rle.py): no full-image array is built.

A detection without a usable mask (Detection.mask is None: Gemini sent no mask or a
degenerate one) gives no brush region; filling its box would pass a rectangle off as a
segmentation. It is counted as `no_mask` in Conversion.dropped for the caller's metrics. A
mask with fewer than model_min_area pixels left after thresholding counts as `empty_mask`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from ..detections import Detection, DropReason, ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import EMPTY_MASK, Conversion
from .masks import masked_detections
from .result import RegionIds, image_result, pixel_box_key
from .reverse import NOTHING, detection, label_of, norm_box, value_of
from .rle import decode_brush, encode_brush_rle


class BrushHandler:
    """`tag`: BrushLabels, or the bare shape tool whose regions carry a <Labels> (perregion.py splits them)."""

    def __init__(self, tag: str = "BrushLabels") -> None:
        self.tag = tag

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        settings = control.settings
        dropped: Counter[DropReason] = Counter()
        ids = RegionIds(control, image)
        results = []
        sources: list[Detection] = []
        for det, box, region in masked_detections(control, image, answer, dropped):
            if cv2.countNonZero(region.view(np.uint8)) < max(settings.min_area, 1):
                dropped[EMPTY_MASK] += 1
                continue
            rle = encode_brush_rle(region, box, image.width, image.height)
            value = {"format": "rle", "rle": rle, "brushlabels": [det.label]}
            results.append(image_result(ids.make(det.label, pixel_box_key(box)), control, image, value, det.score))
            sources.append(det)
        return Conversion.of(results, dropped, sources)

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        """The brush mask decoded: its box, and the mask inside that box (0/255) as the map."""
        value = value_of(result)
        label = label_of(value) if value is not None else None
        w, h = result.get("original_width"), result.get("original_height")
        if value is None or label is None or not isinstance(w, int) or not isinstance(h, int) or w <= 0 or h <= 0:
            return NOTHING
        mask = decode_brush(value, w, h)
        if mask is None or not mask.any():
            return NOTHING
        ys, xs = np.nonzero(mask)
        x0, y0 = float(100 * xs.min() / w), float(100 * ys.min() / h)
        x1, y1 = float(100 * (xs.max() + 1) / w), float(100 * (ys.max() + 1) / h)
        # the crop goes through the percent box so that box and map agree to the pixel
        top, left = int(y0 / 100 * h), int(x0 / 100 * w)
        crop = mask[top : max(top + 1, math.ceil(y1 / 100 * h)), left : max(left + 1, math.ceil(x1 / 100 * w))]
        return detection(label, image_index, box=norm_box((x0, y0, x1, y1)), mask=crop.astype(np.uint8) * 255)
