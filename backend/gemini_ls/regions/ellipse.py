"""EllipseLabels handler: the ellipse inscribed in each detection's box.

Label Studio stores an ellipse as its centre (`x`, `y`) and radii (`radiusX` in percent of the image
width, `radiusY` of its height), unrotated here: Gemini's boxes are axis-aligned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..detections import Detection, DropReason, ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import NO_BOX, Conversion
from .result import DECIMALS, RegionIds, box_percent, image_result
from .reverse import NOTHING, detection, label_of, norm_box, percent_box, value_of
from .selection import select


def _usable(det: Detection) -> DropReason | None:
    return None if det.box is not None else NO_BOX


class EllipseHandler:
    """`tag`: EllipseLabels, or a bare <Ellipse> whose regions carry a <Labels> (perregion.py)."""

    def __init__(self, tag: str = "EllipseLabels") -> None:
        self.tag = tag

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        selection = select(control, image, answer, _usable)
        ids = RegionIds(control, image)
        results = []
        sources: list[Detection] = []
        for det in selection.detections:
            assert det.box is not None  # _usable kept only detections with a box
            x, y, w, h = box_percent(det.box)
            rx, ry = round(w / 2, DECIMALS), round(h / 2, DECIMALS)
            cx, cy = round(x + rx, DECIMALS), round(y + ry, DECIMALS)
            value = {"x": cx, "y": cy, "radiusX": rx, "radiusY": ry, "rotation": 0, "ellipselabels": [det.label]}
            results.append(image_result(ids.make(det.label, (cx, cy, rx, ry)), control, image, value, det.score))
            sources.append(det)
        return Conversion.of(results, selection.dropped, sources)

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        """The box around the (unrotated) ellipse."""
        value = value_of(result)
        label = label_of(value) if value is not None else None
        if value is None or label is None:
            return NOTHING
        cx, cy, rx, ry = (float(value.get(k, 0.0) or 0.0) for k in ("x", "y", "radiusX", "radiusY"))
        box = percent_box([(cx - rx, cy - ry), (cx + rx, cy + ry)])
        return detection(label, image_index, box=norm_box(box)) if box is not None else NOTHING
