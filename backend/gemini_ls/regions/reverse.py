"""The reverse direction: one Label Studio result (an annotator's region) -> the typed answer it stands for.

Each handler of the registry has a `reverse(result, image_index)` beside its `convert`; this module
holds what they share. Used for few-shot examples (review/fewshot.py): an annotation becomes the
`ParsedAnswer` a provider should have given, which the provider renders in its own output format.

Geometry is kept in the frame of `detections.py` (0-1000, named fields), computed from Label
Studio's percent values as `v * 10`; annotator regions carry no score (`score` is None).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..detections import Detection, NormBox, ParsedAnswer

# where a region's label sits in its value, first match wins (a multi-label region counts under its first)
LABEL_KEYS = ("rectanglelabels", "polygonlabels", "brushlabels", "keypointlabels", "ellipselabels", "labels")
NOTHING = ParsedAnswer()


def label_of(value: Mapping[str, Any]) -> str | None:
    for key in LABEL_KEYS:
        labels = value.get(key)
        if isinstance(labels, list) and labels and isinstance(labels[0], str):
            return labels[0]
    return None


def value_of(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = result.get("value")
    return value if isinstance(value, Mapping) else None


def percent_box(points: list[tuple[float, float]]) -> tuple[float, float, float, float] | None:
    """The axis-aligned box (x0, y0, x1, y1) in percent around points, clamped to 0..100; None without area."""
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    box = (max(0.0, min(xs)), max(0.0, min(ys)), min(100.0, max(xs)), min(100.0, max(ys)))
    return box if box[2] > box[0] and box[3] > box[1] else None


def rectangle_corners(value: Mapping[str, Any]) -> list[tuple[float, float]]:
    """A (possibly rotated) rectangle's corners in percent; Label Studio rotates about (x, y)."""
    x, y, w, h = (float(value.get(k, 0.0) or 0.0) for k in ("x", "y", "width", "height"))
    a = math.radians(float(value.get("rotation", 0.0) or 0.0))
    c, s = math.cos(a), math.sin(a)
    return [(x + px * c - py * s, y + px * s + py * c) for px, py in ((0, 0), (w, 0), (w, h), (0, h))]


def norm_box(box: tuple[float, float, float, float]) -> NormBox:
    """A percent box (x0, y0, x1, y1) in the 0-1000 frame, unclamped beyond what percent had."""
    x0, y0, x1, y1 = box
    return NormBox(ymin=y0 * 10, xmin=x0 * 10, ymax=y1 * 10, xmax=x1 * 10)


def detection(label: str, image_index: int, **geometry: Any) -> ParsedAnswer:
    """One annotator region as a one-detection answer."""
    return ParsedAnswer(detections=(Detection(label=label, raw_label=label, image_index=image_index, **geometry),))


def merge(answers: list[ParsedAnswer]) -> ParsedAnswer:
    """Several results' answers as one: detections and choices in order, the first text and number."""
    return ParsedAnswer(
        detections=tuple(d for a in answers for d in a.detections),
        choices=tuple(c for a in answers for c in a.choices),
        text=next((a.text for a in answers if a.text is not None), None),
        number=next((a.number for a in answers if a.number is not None), None),
    )
