"""One answer item's per-region attributes (its "attributes" object), checked against what was asked.

Only the questions asked for the item's label are kept, each coerced to its control's value form
(`detections.AttributeValue`): text stripped, choices matched to the control's options (unknown ones
dropped, one for a single-choice control), numbers inside the control's min/max, ratings whole
numbers from 1 to maxRating. Anything else is left out: the region keeps its box and label.
A model that writes a question's key beside "box_2d" instead of inside "attributes" is read too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..detections import AttributeValue
from ..labelconfig import AttributeSpec
from .item_fields import as_number
from .labels import LabelMatcher

MAX_TEXT = 10_000  # characters; a transcription longer than a page is not a region's text


def _text(raw: Any) -> str | None:
    if isinstance(raw, list):
        raw = "\n".join(str(v) for v in raw if isinstance(v, (str, int, float)))
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return None
    text = str(raw).strip()[:MAX_TEXT]
    return text or None


def _choices(spec: AttributeSpec, raw: Any) -> tuple[str, ...] | None:
    candidates = raw if isinstance(raw, list) else [raw]
    matcher = LabelMatcher(spec.options)
    picked = list(dict.fromkeys(hit for c in candidates if isinstance(c, str) and (hit := matcher.match(c)) is not None))
    if not picked:
        return None
    return tuple(picked) if spec.multiple else (picked[0],)


def _in_range(spec: AttributeSpec, number: float) -> bool:
    return (spec.minimum is None or number >= spec.minimum) and (spec.maximum is None or number <= spec.maximum)


def coerce(spec: AttributeSpec, raw: Any) -> AttributeValue | None:
    """`raw` as the control's value, None when it is not one."""
    if spec.tag == "TextArea":
        return _text(raw)
    if spec.tag == "Choices":
        return _choices(spec, raw)
    number = as_number(raw)
    if number is None or not _in_range(spec, number):
        return None
    if spec.tag == "Rating":
        return int(number) if number == int(number) else None
    return int(number) if number == int(number) else number


def parse_attributes(
    item: Mapping[str, Any], asked: tuple[tuple[AttributeSpec, tuple[str, ...] | None], ...], label: str
) -> tuple[tuple[str, AttributeValue], ...]:
    """The item's valid answers to the questions asked for `label`, in the order asked."""
    if not asked:
        return ()
    nested = item.get("attributes")
    answers: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
    out: list[tuple[str, AttributeValue]] = []
    for spec, labels in asked:
        if labels is not None and label not in labels:
            continue
        raw = answers.get(spec.name, item.get(spec.name))
        value = coerce(spec, raw) if raw is not None else None
        if value is not None:
            out.append((spec.name, value))
    return tuple(out)
