"""RectangleLabels handler: each detection's box as a rectangle in percent of the image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..detections import Detection, DropReason, ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import NO_BOX, Conversion
from .result import RegionIds, box_percent, image_result
from .reverse import NOTHING, detection, label_of, norm_box, percent_box, rectangle_corners, value_of
from .selection import select


def _usable(det: Detection) -> DropReason | None:
    return None if det.box is not None else NO_BOX


Geometry = dict[str, float]


class RectangleHandler:
    """`tag`: RectangleLabels, or the bare shape tool whose regions carry a <Labels> (perregion.py splits them).
    Also the base of every shape drawn from a detection's box (ellipse.py): a subclass gives its geometry."""

    labels_key = "rectanglelabels"

    def __init__(self, tag: str = "RectangleLabels") -> None:
        self.tag = tag

    def geometry(self, x: float, y: float, w: float, h: float) -> Geometry:
        """The shape's value fields from the box in percent (its region id is derived from them, in order)."""
        return {"x": x, "y": y, "width": w, "height": h}

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        selection = select(control, image, answer, _usable)
        ids = RegionIds(control, image)
        results = []
        sources: list[Detection] = []
        for det in selection.detections:
            assert det.box is not None  # _usable kept only detections with a box
            shape = self.geometry(*box_percent(det.box))
            value = {**shape, "rotation": 0, self.labels_key: [det.label]}
            results.append(image_result(ids.make(det.label, tuple(shape.values())), control, image, value, det.score))
            sources.append(det)
        return Conversion.of(results, selection.dropped, sources)

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        """The rectangle's box (a rotated one: the axis-aligned box around it)."""
        value = value_of(result)
        label = label_of(value) if value is not None else None
        box = percent_box(rectangle_corners(value)) if value is not None else None
        return detection(label, image_index, box=norm_box(box)) if label is not None and box is not None else NOTHING
