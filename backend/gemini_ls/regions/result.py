"""Building Label Studio result dicts: stable ids, percent geometry, the shared fields."""

from __future__ import annotations

import hashlib

from ..detections import ImageMeta, NormBox, PixelBox
from ..labelconfig import ControlSpec

DECIMALS = 4  # percent; 1e-4 % of a 10000 px side is 0.01 px
# A calibrated region keeps Gemini's own confidence here beside its `score` (the calibrated
# probability, predict.py): the review loop learns from the confidence, not from its own output.
# Label Studio stores the key with the region and ignores it.
CONFIDENCE_KEY = "model_confidence"


def clamp_percent(value: float) -> float:
    return round(min(max(float(value), 0.0), 100.0), DECIMALS)


def box_percent(box: NormBox) -> tuple[float, float, float, float]:
    """(x, y, width, height) in percent, clamped so the rectangle stays inside 0..100."""
    x, y, w, h = box.to_percent()
    x, y = clamp_percent(x), clamp_percent(y)
    return x, y, round(min(max(w, 0.0), 100.0 - x), DECIMALS), round(min(max(h, 0.0), 100.0 - y), DECIMALS)


def pixel_box_key(box: PixelBox) -> tuple[int, int, int, int]:
    return (box.x0, box.y0, box.x1, box.y1)


class RegionIds:
    """Stable ids for one conversion: a short sha1 of what defines the region.

    The same control, image, label and (rounded) geometry always give the same id, so a
    re-run yields identical predictions; exact duplicates within one call get a suffix so
    ids stay unique within the task. One instance per conversion (not shared state).
    """

    def __init__(self, control: ControlSpec, image: ImageMeta) -> None:
        self._prefix = f"{control.name}\x1f{image.name}"
        self._seen: set[str] = set()

    def make(self, label: str, *geometry: object) -> str:
        key = "\x1f".join([self._prefix, label, *map(_fmt, geometry)])
        rid = hashlib.sha1(key.encode()).hexdigest()[:10]
        n = 1
        while rid in self._seen:
            n += 1
            rid = hashlib.sha1(f"{key}\x1f#{n}".encode()).hexdigest()[:10]
        self._seen.add(rid)
        return rid


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (tuple, list)):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def image_result(
    rid: str, control: ControlSpec, image: ImageMeta, value: dict, score: float | None
) -> dict:
    """A region on an image: the fields Label Studio's editor writes for image regions."""
    result = {
        "id": rid,
        "from_name": control.name,
        "to_name": image.name,
        "type": control.result_type,
        "original_width": image.width,
        "original_height": image.height,
        "image_rotation": 0,
        "value": value,
    }
    if score is not None:
        result["score"] = float(score)
    return result


def classification_result(rid: str, control: ControlSpec, image: ImageMeta, value: dict) -> dict:
    """A per-task answer (Choices, TextArea): no geometry, so no image size fields."""
    return {
        "id": rid,
        "from_name": control.name,
        "to_name": image.name,
        "type": control.result_type,
        "value": value,
    }
