"""Choices handler: Gemini's chosen classes that belong to the control, as one per-task result.

Only values of the control's <Choice> tags are kept (in Gemini's order, without repeats); a
single-choice control keeps the first. Nothing valid -> no result.
"""

from __future__ import annotations

from ..detections import ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import Conversion
from .result import RegionIds, classification_result


def chosen(control: ControlSpec, answer: ParsedAnswer) -> list[str]:
    valid = {label.value for label in control.labels}
    picked = list(dict.fromkeys(c for c in answer.choices if c in valid))
    return picked if control.multiple else picked[:1]


class ChoicesHandler:
    tag = "Choices"

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        picked = chosen(control, answer)
        if not picked:
            return Conversion()
        rid = RegionIds(control, image).make("choices", tuple(picked))
        return Conversion.of([classification_result(rid, control, image, {"choices": picked})])
