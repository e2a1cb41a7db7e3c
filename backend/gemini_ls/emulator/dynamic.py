"""Labels from the task, answered from pixels: reference pictures and referring expressions.

Recognised by the backend's wording (gemini/dynprompts.py), which a person could write too:
- a target line described as "the object shown in reference image N": image N is a picture of the
  labelled object. The emulator looks at it like at any image (the largest shape it sees), and a
  scene object is that label when its colour class is the same and its outline is alike: the
  intersection over union of the two masks scaled to one size, times how alike their aspects are
  (a square and a 2:1 rectangle fill the same scaled box, their aspects tell them apart). The
  reference images themselves are not searched.
- "referring expression" in the prompt: each target line is a phrase such as "the red circle left
  of the blue square". The part before a relation word names the object (colour and/or shape),
  the part after it the anchor; the answer is ONE region per phrase: the matching object that
  stands in that relation to a matching anchor (the closest one), nothing when none does.
Anything else returns None and the generic answer applies.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from .answers import MaskEncoder, object_items
from .attributes import read_questions
from .understanding import Target, Task, describe, target_lines
from .vision import SeenImage, SeenObject

_REFERENCE = re.compile(r"reference image (\d+)", re.IGNORECASE)
_RELATION = re.compile(
    r"\b(to the left of|left of|to the right of|right of|above|over|below|under|beneath|next to|beside|near|on|behind|in front of)\b"
)
OUTLINE_SIDE = 32  # masks are compared at this size
MIN_SIMILARITY = 0.88  # a circle fills ~0.79 of a square's scaled box, a triangle ~0.5
ASPECT_TOLERANCE = 0.7  # aspects within 30 % are alike (a product seen at another angle); a 1.7:1 rectangle is no square


def outline_similarity(a: SeenObject, b: SeenObject) -> float:
    """How alike two objects' outlines are: mask IoU at one scale, times the ratio of their aspects
    beyond ASPECT_TOLERANCE."""
    def scaled(obj: SeenObject) -> np.ndarray:
        return cv2.resize(obj.mask.astype(np.uint8) * 255, (OUTLINE_SIDE, OUTLINE_SIDE), interpolation=cv2.INTER_AREA) > 127

    ma, mb = scaled(a), scaled(b)
    union = np.logical_or(ma, mb).sum()
    iou = float(np.logical_and(ma, mb).sum() / union) if union else 0.0

    def aspect(obj: SeenObject) -> float:
        x0, y0, x1, y1 = obj.box
        return max(1, x1 - x0) / max(1, y1 - y0)

    ra, rb = aspect(a), aspect(b)
    return iou * min(1.0, min(ra, rb) / max(ra, rb) / ASPECT_TOLERANCE)


def _reference_items(task: Task, lines: list[tuple[str, str | None]], refs: dict[str, int],
                     images: list[SeenImage], mask: MaskEncoder | None) -> list[dict]:
    searched = [i for i in range(len(images)) if i + 1 not in set(refs.values())]
    pictured: dict[str, SeenObject] = {}
    for label, number in refs.items():
        if 1 <= number <= len(images) and images[number - 1].objects:
            pictured[label] = max(images[number - 1].objects, key=lambda o: o.area)
    by_name = [describe(label, desc) for label, desc in lines if label not in refs]
    scenes = [images[i] for i in searched]
    chosen: list[tuple[int, SeenObject, str]] = []
    for index, seen in enumerate(scenes):
        for obj in seen.objects:
            scored = [(outline_similarity(obj, ref), label) for label, ref in pictured.items() if ref.colour == obj.colour]
            best = max(scored, default=(0.0, ""))
            if best[0] >= MIN_SIMILARITY:
                chosen.append((index, obj, best[1]))
                continue
            target = next((t for t in by_name if t.matches(obj.colour, obj.shape)), None)
            if target is not None:
                chosen.append((index, obj, target.label))
    if task.limit is not None:
        chosen = chosen[: task.limit]
    return object_items(task.kind, chosen, scenes, mask, read_questions(task.text))


def _satisfies(relation: str, obj: SeenObject, anchor: SeenObject) -> bool:
    (ox, oy), (ax, ay) = obj.centre, anchor.centre
    if "left" in relation:
        return ox < ax
    if "right" in relation:
        return ox > ax
    if relation in ("above", "over"):
        return oy < ay
    if relation in ("below", "under", "beneath"):
        return oy > ay
    return True  # next to, near, on, behind...: the closest pair wins


def _names_something(target: Target) -> bool:
    return bool(target.colours or target.shapes)


def ground(phrase: str, seen: SeenImage) -> SeenObject | None:
    """The one object of `seen` that `phrase` refers to, None when none fits."""
    low = phrase.lower()
    split = _RELATION.search(low)
    head = describe("", low[: split.start()] if split else low)
    if not _names_something(head):
        return None
    candidates = [o for o in seen.objects if head.matches(o.colour, o.shape)]
    if not split:
        return max(candidates, key=lambda o: o.area, default=None)
    anchor_words = describe("", low[split.end():])
    anchors = [o for o in seen.objects if _names_something(anchor_words) and anchor_words.matches(o.colour, o.shape)]
    pairs = [
        (np.hypot(o.centre[0] - a.centre[0], o.centre[1] - a.centre[1]), o)
        for o in candidates for a in anchors if a is not o and _satisfies(split.group(1), o, a)
    ]
    return min(pairs, key=lambda p: p[0])[1] if pairs else None


def _grounded_items(task: Task, lines: list[tuple[str, str | None]], images: list[SeenImage],
                    mask: MaskEncoder | None) -> list[dict]:
    chosen: list[tuple[int, SeenObject, str]] = []
    for label, _ in lines:
        for index, seen in enumerate(images):
            found = ground(label, seen)
            if found is not None:
                chosen.append((index, found, label))
                break
    return object_items(task.kind, chosen, images, mask, read_questions(task.text))


def items_for(task: Task, user_text: str, images: list[SeenImage], mask: MaskEncoder | None) -> list[dict] | None:
    """The answer to a reference-picture or referring-expression prompt; None for any other prompt."""
    lines = target_lines(user_text)
    refs: dict[str, int] = {}
    for label, desc in lines:
        found = _REFERENCE.search(desc or "")
        if found:
            refs[label] = int(found.group(1))
    if refs:
        return _reference_items(task, lines, refs, images, mask)
    if "referring expression" in user_text.lower() and lines:
        return _grounded_items(task, lines, images, mask)
    return None
