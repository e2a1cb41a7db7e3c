"""TextArea handler: Gemini's text answer (stripped) as one per-task result; empty -> none."""

from __future__ import annotations

import hashlib

from ..detections import ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import Conversion
from .result import RegionIds, classification_result


class TextAreaHandler:
    tag = "TextArea"

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        text = (answer.text or "").strip()
        if not text:
            return Conversion()
        rid = RegionIds(control, image).make("text", hashlib.sha1(text.encode()).hexdigest())
        return Conversion.of([classification_result(rid, control, image, {"text": [text]})])
