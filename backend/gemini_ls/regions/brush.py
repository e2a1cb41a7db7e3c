"""BrushLabels handler: each detection's mask as a Label Studio brush RLE region.

The probability map is resized to the detection's pixel box and thresholded (masks.py), then
encoded straight from that box (rle.py): no full-image array is built.

A detection without a usable mask (Detection.mask is None: Gemini sent no mask or a
degenerate one) gives no brush region; filling its box would pass a rectangle off as a
segmentation. It is counted as `no_mask` in Conversion.dropped for the caller's metrics. A
mask with fewer than model_min_area pixels left after thresholding counts as `empty_mask`.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

from ..detections import DropReason, ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import EMPTY_MASK, Conversion
from .masks import masked_detections
from .result import RegionIds, image_result, pixel_box_key
from .rle import encode_brush_rle


class BrushHandler:
    tag = "BrushLabels"

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        settings = control.settings
        dropped: Counter[DropReason] = Counter()
        ids = RegionIds(control, image)
        results = []
        for det, box, region in masked_detections(control, image, answer, dropped):
            if cv2.countNonZero(region.view(np.uint8)) < max(settings.min_area, 1):
                dropped[EMPTY_MASK] += 1
                continue
            rle = encode_brush_rle(region, box, image.width, image.height)
            value = {"format": "rle", "rle": rle, "brushlabels": [det.label]}
            results.append(image_result(ids.make(det.label, pixel_box_key(box)), control, image, value, det.score))
        return Conversion.of(results, dropped)
