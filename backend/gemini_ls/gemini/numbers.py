"""One number about the whole image: the prompt and the parser of a Number / Rating request.

The question is the control's (imagequestions.with_question: model_prompt, hint or name); the range
is its min/max (Rating: 1 to maxRating, whole stars). An answer outside the range is dropped
("out_of_range"), never clamped: a count of 40 on a 0-10 scale is not a 10.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from ..detections import DropReason, ParsedAnswer
from ..imagequestions import Scale
from .item_fields import as_number
from .lenient_json import load_answer, normalise_finish_reason, strip_fences
from .prompts import Prompt

NUMBER_KEYS = ("number", "value", "answer", "count", "rating", "score")
_NUMBER_SCHEMA = {"type": "ARRAY", "items": {"type": "NUMBER"}}
_PROSE_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def number_prompt(question: str | None, scale: Scale | None, n_images: int = 1) -> Prompt:
    what = "these images" if n_images > 1 else "the image"
    form = "one whole number" if scale is not None and scale.whole else "one number"
    rng = scale.describe() if scale is not None else ""
    user = (
        (question.strip() + "\n" if question else "")
        + f"Answer this about {what} with {form}{rng}. "
        "Output a JSON list holding just that number."
    )
    return Prompt(system=None, user=user, json_mode=True, response_schema=_NUMBER_SCHEMA)


def _first_number(value: Any) -> float | None:
    if isinstance(value, list):
        return next((n for n in (_first_number(v) for v in value) if n is not None), None)
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        return next((n for n in (_first_number(lowered[k]) for k in NUMBER_KEYS if k in lowered) if n is not None), None)
    return as_number(value)


def parse_number(text: str | None, scale: Scale | None, finish_reason: str | None = None) -> ParsedAnswer:
    """The number of a JSON answer ([3], 3, {"count": 3}, "3") or the first number in prose; within
    the scale or none ("out_of_range"); a Rating's 4.0 is 4."""
    truncated = normalise_finish_reason(finish_reason) == "MAX_TOKENS"
    value, repaired, _lost, found = load_answer(text, finish_reason)
    number = _first_number(value) if found else None
    if number is None and text and text.strip():
        match = _PROSE_NUMBER.search(strip_fences(text))
        number = float(match.group(0)) if match else None
    dropped: Counter[DropReason] = Counter()
    if number is None:
        if text and text.strip():
            dropped["no_json"] += 1
        return ParsedAnswer(truncated=truncated or repaired, dropped=dict(dropped))
    if scale is not None and not scale.accepts(number):
        dropped["out_of_range"] += 1
        return ParsedAnswer(truncated=truncated or repaired, dropped=dict(dropped))
    return ParsedAnswer(number=number, truncated=truncated or repaired)
