"""Interactive prompts, answered from pixels the way Gemini would: the annotator's points, a crop
around a drawn box, or a phrase ("the red circles") narrowing the usual spatial prompt.

Recognised by their wording (the backend writes them in interactive/prompts.py; a person could
write the same):
- "Points as [y, x] ..." with lines "- on the object: [y, x]" / "- not on the object: [y, x]":
  the ONE object whose pixels hold the most positive points and none of the negative ones;
- "The box in this image is [ymin, xmin, ymax, xmax] = [...]": the object best covered by the box;
- 'every object matching this description: "<phrase>"': the objects whose colour and shape the
  phrase names, each labelled with the first target line that fits it.
Anything else returns None and the generic answer applies.

`every` (the "interactive_all" fault): a click or box prompt is answered with every object of the
asked label (plus the one under the points, if another), largest first, the way a model may ignore
"exactly ONE entry"; the backend must pick the annotator's object itself (interactive/choose.py).
"""

from __future__ import annotations

import json
import re

from .answers import MaskEncoder, object_items
from .understanding import Target, Task, describe, target_lines
from .vision import SeenImage, SeenObject

_POINT = re.compile(r"^\s*-\s*(on|not on) the object:\s*\[\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\]", re.MULTILINE)
_BOX = re.compile(r"box in this image is \[ymin, xmin, ymax, xmax\] = \[\s*([-\d., ]+)\]", re.IGNORECASE)
_PHRASE = re.compile(r"every object matching this description:\s*(\"(?:[^\"\\]|\\.)*\")", re.IGNORECASE)
_LABEL = re.compile(r"with the label (\"(?:[^\"\\]|\\.)*\")")
MIN_BOX_COVER = 0.5  # share of an object's box the drawn box must cover


def _label(text: str, default: str) -> str:
    found = _LABEL.search(text)
    if not found:
        return default
    try:
        return json.loads(found.group(1))
    except json.JSONDecodeError:
        return default


def _holds(obj: SeenObject, seen: SeenImage, y: float, x: float) -> bool:
    px, py = int(x / 1000 * seen.width), int(y / 1000 * seen.height)
    x0, y0, x1, y1 = obj.box
    return x0 <= px < x1 and y0 <= py < y1 and bool(obj.mask[py - y0, px - x0])


def _under_points(text: str, seen: SeenImage) -> list[SeenObject]:
    points = [(kind == "on", float(y), float(x)) for kind, y, x in _POINT.findall(text)]
    scored = []
    for obj in seen.objects:
        if any(not positive and _holds(obj, seen, y, x) for positive, y, x in points):
            continue
        hits = sum(1 for positive, y, x in points if positive and _holds(obj, seen, y, x))
        if hits:
            scored.append((-hits, obj.area, obj))
    return [min(scored, key=lambda s: (s[0], s[1]))[2]] if scored else []


def _in_box(text: str, seen: SeenImage) -> list[SeenObject]:
    numbers = [float(v) for v in _BOX.search(text).group(1).split(",") if v.strip()]  # type: ignore[union-attr]
    if len(numbers) != 4:
        return []
    y0, x0, y1, x1 = numbers
    bx0, by0, bx1, by1 = x0 / 1000 * seen.width, y0 / 1000 * seen.height, x1 / 1000 * seen.width, y1 / 1000 * seen.height
    best, best_cover = None, 0.0
    for obj in seen.objects:
        ox0, oy0, ox1, oy1 = obj.box
        inter = max(0.0, min(bx1, ox1) - max(bx0, ox0)) * max(0.0, min(by1, oy1) - max(by0, oy0))
        cover = inter / max(1.0, (ox1 - ox0) * (oy1 - oy0))
        if cover > best_cover:
            best, best_cover = obj, cover
    return [best] if best is not None and best_cover >= MIN_BOX_COVER else []


def _every(chosen: list[SeenObject], seen: SeenImage, target: Target) -> list[SeenObject]:
    same = [obj for obj in seen.objects if obj in chosen or target.matches(obj.colour, obj.shape)]
    return sorted(same, key=lambda obj: -obj.area)


def items_for(task: Task, user_text: str, images: list[SeenImage], mask: MaskEncoder | None, *,
              every: bool = False) -> list | None:
    """Answer items for an interactive prompt, or None when the prompt is not one."""
    if not images:
        return None
    seen = images[0]
    targets = [describe(label, desc) for label, desc in target_lines(user_text)]
    default = targets[0].label if targets else "object"
    if _POINT.search(user_text):
        chosen = _under_points(user_text, seen)
    elif _BOX.search(user_text):
        chosen = _in_box(user_text, seen)
    else:
        phrase_match = _PHRASE.search(user_text)
        if not phrase_match:
            return None
        phrase = describe("", json.loads(phrase_match.group(1)), allow_generic=True)
        picked = []
        for obj in seen.objects:
            if phrase.matches(obj.colour, obj.shape):
                fits = next((t for t in targets if t.matches(obj.colour, obj.shape)), None)
                picked.append((0, obj, fits.label if fits else default))
        return object_items(task.kind, picked[: task.limit] if task.limit else picked, images, mask)
    label = _label(user_text, default)
    if every:
        target = next((t for t in targets if t.label == label), describe(label, None))
        chosen = _every(chosen, seen, target)
    return object_items(task.kind, [(0, obj, label) for obj in chosen], images, mask)
