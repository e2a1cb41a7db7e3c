"""Number, Rating and Taxonomy on the whole image: one per-task result each, and back.

Number: {"number": n}; Rating: {"rating": n} (whole stars); Taxonomy: {"taxonomy": [path, ...]},
each path the list of node values from the root, as Label Studio's editor stores them. The parser
already kept only answers within the control's bounds (gemini/numbers.py); the taxonomy's options
are its nodes' paths joined (imagequestions.py), turned back into lists here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..detections import ImageMeta, ParsedAnswer
from ..imagequestions import PATH_SEPARATOR
from ..labelconfig import ControlSpec
from .choices import chosen
from .handler import Conversion
from .result import RegionIds, classification_result
from .reverse import NOTHING, value_of


class NumberHandler:
    """Number (`{"number": 2.5}`) or Rating (`{"rating": 4}`), by `tag`."""

    def __init__(self, tag: str = "Number") -> None:
        self.tag = tag
        self.key = tag.lower()

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        if answer.number is None:
            return Conversion()
        value: float | int = int(answer.number) if self.tag == "Rating" or answer.number.is_integer() else answer.number
        rid = RegionIds(control, image).make(self.key, float(value))
        return Conversion.of([classification_result(rid, control, image, {self.key: value})])

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        value = value_of(result)
        number = value.get(self.key) if value is not None else None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            return NOTHING
        return ParsedAnswer(number=float(number))


class TaxonomyHandler:
    tag = "Taxonomy"

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        paths = {label.value: list(label.path) for label in control.labels}
        picked = [paths[value] for value in chosen(control, answer) if paths.get(value)]
        if not picked:
            return Conversion()
        rid = RegionIds(control, image).make("taxonomy", tuple(PATH_SEPARATOR.join(p) for p in picked))
        return Conversion.of([classification_result(rid, control, image, {"taxonomy": picked})])

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        """The chosen paths, joined as the prompt offers them."""
        value = value_of(result)
        paths = value.get("taxonomy") if value is not None else None
        if not isinstance(paths, list):
            return NOTHING
        return ParsedAnswer(choices=tuple(
            PATH_SEPARATOR.join(p) for p in paths if isinstance(p, list) and p and all(isinstance(s, str) for s in p)))
