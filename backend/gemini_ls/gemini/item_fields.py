"""One answer item's fields: numbers, boxes, points and scores, coerced and clamped.

Boxes are [ymin, xmin, ymax, xmax] and points [y, x] in 0-1000 of the image (numeric strings
accepted; out-of-range values clamped; inverted corners swapped). None for anything malformed.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..detections import NORM, NormBox, NormPoint

SCORE_KEYS = ("confidence", "score")


def as_number(value: Any) -> float | None:
    """A finite float from a number or a numeric string; bools and everything else are None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def clamp(value: float, lo: float = 0.0, hi: float = NORM) -> float:
    return min(max(value, lo), hi)


def parse_box(value: Any) -> NormBox | None:
    """[ymin, xmin, ymax, xmax] -> clamped, ordered NormBox; None if malformed or zero-area."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    numbers = [as_number(v) for v in value]
    if any(n is None for n in numbers):
        return None
    y0, x0, y1, x1 = numbers
    return NormBox.from_corners(y0, x0, y1, x1)  # type: ignore[arg-type]


def parse_point(value: Any) -> NormPoint | None:
    """[y, x] -> clamped NormPoint; None if malformed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict):
        value = [value.get("y"), value.get("x")]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    numbers = [as_number(v) for v in value]
    if any(n is None for n in numbers):
        return None
    return NormPoint(y=clamp(numbers[0]), x=clamp(numbers[1]))  # type: ignore[arg-type]


def parse_score(item: dict) -> float | None:
    """"confidence" or "score", clamped to 0..1 (values above 1 become 1, never rescaled)."""
    for key in SCORE_KEYS:
        if key in item:
            number = as_number(item[key])
            if number is not None:
                return clamp(number, 0.0, 1.0)
    return None

