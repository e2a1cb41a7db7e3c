"""KeyPointLabels handler: Gemini's point (or, failing that, its box centre) as a keypoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..detections import Detection, DropReason, ImageMeta, NormPoint, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import NO_BOX, Conversion
from .result import RegionIds, clamp_percent, image_result
from .reverse import NOTHING, detection, label_of, value_of
from .selection import select

# Label Studio stores a keypoint's drawn size as `width`, in percent of the image width.
KEYPOINT_WIDTH = 0.5


def point_of(det: Detection) -> NormPoint | None:
    if det.point is not None:
        return det.point
    if det.box is not None:
        b = det.box
        return NormPoint(y=(b.ymin + b.ymax) / 2, x=(b.xmin + b.xmax) / 2)
    return None


def _usable(det: Detection) -> DropReason | None:
    return None if point_of(det) is not None else NO_BOX


class KeyPointHandler:
    """`tag`: KeyPointLabels, or the bare shape tool whose regions carry a <Labels> (perregion.py splits them)."""

    def __init__(self, tag: str = "KeyPointLabels") -> None:
        self.tag = tag

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        selection = select(control, image, answer, _usable)
        ids = RegionIds(control, image)
        results = []
        sources: list[Detection] = []
        for det in selection.detections:
            point = point_of(det)
            assert point is not None  # _usable kept only detections with a point or a box
            px, py = point.to_percent()
            x, y = clamp_percent(px), clamp_percent(py)
            value = {"x": x, "y": y, "width": KEYPOINT_WIDTH, "keypointlabels": [det.label]}
            results.append(image_result(ids.make(det.label, (x, y)), control, image, value, det.score))
            sources.append(det)
        return Conversion.of(results, selection.dropped, sources)

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        """The keypoint as a point (no box)."""
        value = value_of(result)
        label = label_of(value) if value is not None else None
        if value is None or label is None:
            return NOTHING
        x, y = float(value.get("x", 0.0)), float(value.get("y", 0.0))
        return detection(label, image_index, point=NormPoint(y=y * 10, x=x * 10))
