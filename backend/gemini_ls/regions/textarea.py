"""TextArea handler: Gemini's text answer (stripped) as one per-task result; empty -> none.

A TextArea answering a `<Text>` question (the VQA template) names that Text as its to_name, as the
editor does: the answer belongs beside its question, the image is only what it is about."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..detections import ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import Conversion
from .result import RegionIds, classification_result
from .reverse import NOTHING, value_of


class TextAreaHandler:
    tag = "TextArea"

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        text = (answer.text or "").strip()
        if control.question is not None:  # its answer among the questions asked together
            text, image = dict(answer.answers).get(control.name, ""), replace(image, name=control.question.text_name)
        if not text:
            return Conversion()
        rid = RegionIds(control, image).make("text", hashlib.sha1(text.encode()).hexdigest())
        return Conversion.of([classification_result(rid, control, image, {"text": [text]})])

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer:
        """The text (several lines joined by newlines); none when empty."""
        value = value_of(result)
        parts = value.get("text") if value is not None else None
        lines = [parts] if isinstance(parts, str) else [p for p in parts or () if isinstance(p, str)]
        text = "\n".join(lines).strip()
        return ParsedAnswer(text=text) if text else NOTHING
