"""EllipseLabels handler: the ellipse inscribed in each detection's box.

Label Studio stores an ellipse as its centre (`x`, `y`) and radii (`radiusX` in percent of the image
width, `radiusY` of its height), unrotated here: Gemini's boxes are axis-aligned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..detections import ParsedAnswer
from .rectangle import Geometry, RectangleHandler
from .result import DECIMALS
from .reverse import NOTHING, detection, label_of, norm_box, percent_box, value_of


class EllipseHandler(RectangleHandler):
    """`tag`: EllipseLabels, or a bare <Ellipse> whose regions carry a <Labels> (perregion.py)."""

    labels_key = "ellipselabels"

    def __init__(self, tag: str = "EllipseLabels") -> None:
        super().__init__(tag)

    def geometry(self, x: float, y: float, w: float, h: float) -> Geometry:
        rx, ry = round(w / 2, DECIMALS), round(h / 2, DECIMALS)
        return {"x": round(x + rx, DECIMALS), "y": round(y + ry, DECIMALS), "radiusX": rx, "radiusY": ry}

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        """The box around the (unrotated) ellipse."""
        value = value_of(result)
        label = label_of(value) if value is not None else None
        if value is None or label is None:
            return NOTHING
        cx, cy, rx, ry = (float(value.get(k, 0.0) or 0.0) for k in ("x", "y", "radiusX", "radiusY"))
        box = percent_box([(cx - rx, cy - ry), (cx + rx, cy + ry)])
        return detection(label, image_index, box=norm_box(box)) if box is not None else NOTHING
