"""Choices handler: Gemini's chosen classes that belong to the control, as one per-task result.

Only values of the control's <Choice> tags are kept (in Gemini's order, without repeats); a
single-choice control keeps the first. Nothing valid -> no result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..detections import ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import Conversion
from .result import RegionIds, classification_result
from .reverse import NOTHING, value_of


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

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        """The chosen values, in order (whether they are the control's is the caller's filter)."""
        value = value_of(result)
        if value is None:
            return NOTHING
        return ParsedAnswer(choices=tuple(c for c in value.get("choices") or () if isinstance(c, str)))
