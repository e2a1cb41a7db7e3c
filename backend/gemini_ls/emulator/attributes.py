"""Per-region questions (the "attributes" of each answer item), read from the prompt and answered
from the object's own pixels: its colour and shape as the segmenter found them, its box against the
image border, its size; never from anything but the image.

The prompt lists them as gemini/prompts.py writes them, one per line:
    - "<name>" (text): <question>
    - "<name>" (one of "a", "b"): <question>; only for entries labelled "X", "Y"
    - "<name>" (a JSON list of all that apply of "a", "b")
    - "<name>" (number from 0 to 10)
    - "<name>" (rating, a whole number from 1 to 5)
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .understanding import describe
from .vision import SeenImage, SeenObject

_LINE = re.compile(r'^\s*-\s*("(?:[^"\\]|\\.)*")\s*\(([^)]*)\)(.*)$')
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"from (-?[\d.]+) to (-?[\d.]+)")
_ONLY = "only for entries labelled "
_CORNERS = {"triangle": 3, "square": 4, "rectangle": 4, "circle": 0}
_YES = ("yes", "true", "truncated", "cut off", "partial")
_NO = ("no", "false", "complete", "whole", "none")


@dataclass(frozen=True)
class Question:
    name: str
    form: str  # text | one | many | number | rating
    options: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    text: str = ""
    labels: tuple[str, ...] | None = None  # None: every label


def _strings(text: str) -> tuple[str, ...]:
    return tuple(json.loads(q) for q in _QUOTED.findall(text))


def read_questions(user_text: str) -> tuple[Question, ...]:
    out = []
    for line in user_text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name, form, rest = json.loads(m.group(1)), m.group(2), m.group(3)
        labels = None
        if _ONLY in rest:
            rest, _, tail = rest.partition(_ONLY)
            labels = _strings(tail)
        rest = rest.strip().lstrip(":").strip().rstrip(";").strip()
        rng = _RANGE.search(form)
        low, high = (float(rng.group(1)), float(rng.group(2))) if rng else (None, None)
        if form.startswith("one of"):
            kind, options = "one", _strings(form)
        elif "all that apply" in form:
            kind, options = "many", _strings(form)
        elif form.startswith("rating"):
            kind, options = "rating", ()
        elif form.startswith("number"):
            kind, options = "number", ()
        else:
            kind, options = "text", ()
        out.append(Question(name, kind, options, low, high, rest, labels))
    return tuple(out)


def _touches_border(obj: SeenObject, seen: SeenImage) -> bool:
    x0, y0, x1, y1 = obj.box
    return x0 <= 1 or y0 <= 1 or x1 >= seen.width - 1 or y1 >= seen.height - 1


def _choose(q: Question, obj: SeenObject, seen: SeenImage) -> list[str]:
    """Options naming the object's colour or shape; for a yes/no question about the image border
    (truncated, cut off), whether the object touches it."""
    named = []
    for option in q.options:
        target = describe(option, None)
        if (target.colours or target.shapes) and target.matches(obj.colour, obj.shape):
            named.append(option)
    if named:
        return named
    low = q.text.lower() + " " + q.name.lower()
    if re.search(r"truncat|border|edge|cut off", low):
        want = _YES if _touches_border(obj, seen) else _NO
        return [o for o in q.options if o.lower() in want][:1]
    return []


def _in_range(q: Question, value: float) -> bool:
    return (q.low is None or value >= q.low) and (q.high is None or value <= q.high)


def answer(q: Question, obj: SeenObject, seen: SeenImage) -> Any:
    """The answer for one object, None when the object gives none (the model leaves the key out)."""
    if q.form == "text" and obj.text is not None:  # a line of text: what OCR read there
        return obj.text
    if q.form == "text":
        return obj.colour if re.search(r"colou?r", q.text.lower()) else f"{obj.colour} {obj.shape}"
    if q.form in ("one", "many"):
        picked = _choose(q, obj, seen)
        if not picked:
            return None
        return picked if q.form == "many" else picked[0]
    if q.form == "number":
        if re.search(r"corner|side|vert", q.text.lower() + " " + q.name.lower()):
            value = float(_CORNERS.get(obj.shape, 0))
        else:  # how many objects of its colour the image holds
            value = float(sum(1 for o in seen.objects if o.colour == obj.colour))
        return int(value) if _in_range(q, value) else None
    # rating: how much of the image the object covers, on the scale asked (a quarter of it or more: top)
    high = int(q.high or 5)
    x0, y0, x1, y1 = obj.box
    share = (x1 - x0) * (y1 - y0) / float(seen.width * seen.height)
    return max(1, min(high, math.ceil(share * 4 * high)))


def attributes_for(questions: tuple[Question, ...], obj: SeenObject, seen: SeenImage, label: str) -> dict:
    out = {}
    for q in questions:
        if q.labels is not None and label not in q.labels:
            continue
        value = answer(q, obj, seen)
        if value is not None:
            out[q.name] = value
    return out
