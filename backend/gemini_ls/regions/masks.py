"""Gemini's box-local probability map -> a boolean mask the size of the detection's pixel box.

Gemini sends each mask as a (typically 256x256) uint8 probability map covering only the box
(docs/gemini-facts.md#spatial-output): resize it bilinearly to the box in the original image, then
keep values above the threshold. Only box-sized arrays are ever built, never the full image.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import cv2
import numpy as np

from ..detections import Detection, DropReason, ImageMeta, ParsedAnswer, PixelBox
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


def _has_mask(det: Detection) -> DropReason | None:
    return None if det.mask is not None and det.box is not None else NO_MASK


def masked_detections(
    control: ControlSpec, image: ImageMeta, answer: ParsedAnswer, dropped: Counter[DropReason]
) -> Iterator[tuple[Detection, PixelBox, np.ndarray]]:
    """The control's detections that carry a usable mask, each with its pixel box and box-sized mask.

    Shared by the brush and polygon converters; detections without a mask are counted in `dropped`.
    """
    selection = select(control, image, answer, _has_mask)
    dropped.update(selection.dropped)
    for det in selection.detections:
        assert det.box is not None and det.mask is not None  # _has_mask kept only these
        box = det.box.to_pixels(image.width, image.height)
        yield det, box, shared_mask_region(answer.derived, det.mask, box, control.settings.mask_threshold)
