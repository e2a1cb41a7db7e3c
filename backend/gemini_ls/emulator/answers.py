"""Turning what was seen into the model's reply text, in Gemini's real output shapes."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .attributes import Question, attributes_for, read_questions
from .ocr import text_units
from .understanding import Target, Task, TaskKind
from .vision import SeenImage, SeenObject, colour_totals, probability_map

MASK_SIZE = 256
MASK_TOKENS = 200  # a mask costs "a few hundred tokens" on the real service, not len(base64)/4


@dataclass(frozen=True)
class Answer:
    """The reply: `items` for JSON answers (None for plain text), `text` as the model would write it."""

    text: str
    items: list | None
    n_masks: int = 0


def _stable(key: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % modulo


def _norm(v: float, size: int) -> int:
    return int(round(v / size * 1000))


def _confidence(image_index: int, obj: SeenObject) -> float:
    return round(0.9 + _stable(f"{image_index}:{obj.box}", 9) / 100.0, 2)


def mask_data_url(obj: SeenObject) -> str:
    buf = io.BytesIO()
    Image.fromarray(probability_map(obj.mask, MASK_SIZE), "L").save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_mask(obj: SeenObject, _seen: SeenImage) -> str:
    """The 2.5 family's mask: a base64 PNG probability map of the box."""
    return mask_data_url(obj)


MaskEncoder = Callable[[SeenObject, SeenImage], Any]


def _selected(task: Task, images: list[SeenImage]) -> list[tuple[int, SeenObject, str]]:
    """(image index, object, label) for every object some target asks for, in reading order."""
    chosen = []
    reads_text = any(t.text_kind for t in task.targets)
    for idx, seen in enumerate(images):
        for obj in seen.objects + (text_units(seen, task.text_unit) if reads_text else ()):
            target = next((t for t in task.targets if t.matches(obj.colour, obj.shape)), None)
            if target is not None:
                chosen.append((idx, obj, obj.name if task.free_form else target.label))
    if task.limit is not None:
        chosen = chosen[: task.limit]
    return chosen


def spatial_items(task: Task, images: list[SeenImage], mask: MaskEncoder | None = png_mask) -> list[dict]:
    """The answer items; `mask` writes a segmentation mask the way the model family does (None: the
    family does not segment, so no "mask" key)."""
    return object_items(task.kind, _selected(task, images), images, mask, read_questions(task.text))


def object_items(kind: TaskKind, chosen: list[tuple[int, SeenObject, str]], images: list[SeenImage],
                 mask: MaskEncoder | None = png_mask, questions: tuple[Question, ...] = ()) -> list[dict]:
    """Answer items for the chosen (image index, object, label) triples, in the shape `kind` asks for,
    with the answers to the prompt's per-region `questions` under "attributes"."""
    many = len(images) > 1
    items = []
    for idx, obj, label in chosen:
        seen = images[idx]
        x0, y0, x1, y1 = obj.box
        if kind is TaskKind.POINT:
            cx, cy = obj.centre
            item: dict = {"point": [_norm(cy, seen.height), _norm(cx, seen.width)], "label": label}
        else:
            item = {
                "box_2d": [_norm(y0, seen.height), _norm(x0, seen.width), _norm(y1, seen.height), _norm(x1, seen.width)]
            }
            if kind is TaskKind.SEGMENT and mask is not None:
                item["mask"] = mask(obj, seen)
            item["label"] = label
        item["confidence"] = _confidence(idx, obj)
        answered = attributes_for(questions, obj, seen, label)
        if answered:
            item["attributes"] = answered
        if many:
            item["image_index"] = idx
        items.append(item)
    return items


def classify(task: Task, images: list[SeenImage]) -> list[str]:
    objects = [o for seen in images for o in seen.objects]
    totals = colour_totals(objects)
    present_colours = set(totals)
    present_shapes = {o.shape for o in objects}
    options: tuple[Target, ...] = task.targets
    if task.multiple:
        return [
            t.label
            for t in options
            if (t.colours & present_colours) or (not t.colours and t.shapes & present_shapes)
        ]
    if totals:
        dominant = max(totals, key=lambda c: totals[c])
        for t in options:
            if dominant in t.colours:
                return [t.label]
        shape_area: dict[str, int] = {}
        for o in objects:
            shape_area[o.shape] = shape_area.get(o.shape, 0) + o.area
        top_shape = max(shape_area, key=lambda s: shape_area[s])
        for t in options:
            if top_shape in t.shapes:
                return [t.label]
    return [options[0].label] if options else []


_NUMBER_WORDS = ["no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


def _count_phrase(name: str, n: int) -> str:
    if n == 1:
        return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
    count = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
    return f"{count} {name}s"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _counts(seen: SeenImage) -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in seen.objects:
        counts[obj.name] = counts.get(obj.name, 0) + 1
    return counts


def caption(seen: SeenImage) -> str:
    counts = _counts(seen)
    background = f"on a {seen.background} background"
    if not counts:
        return f"An empty image, just a {seen.background} background."
    text = _join([_count_phrase(name, n) for name, n in counts.items()])
    return f"{text[0].upper()}{text[1:]} {background}."


def difference(images: list[SeenImage]) -> str:
    a, b = _counts(images[0]), _counts(images[1])
    only_a = {k: a[k] - b.get(k, 0) for k in a if a[k] > b.get(k, 0)}
    only_b = {k: b[k] - a.get(k, 0) for k in b if b[k] > a.get(k, 0)}
    parts = []
    if only_a:
        parts.append(f"Image 1 has {_join([_count_phrase(k, n) for k, n in only_a.items()])} that image 2 does not")
    if only_b:
        parts.append(f"image 2 has {_join([_count_phrase(k, n) for k, n in only_b.items()])} that image 1 does not")
    if not parts:
        return "The two images show the same objects."
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."


def plain_text(task: Task, images: list[SeenImage]) -> str:
    if not images:
        return "I don't see any image to describe."
    if task.differ and len(images) >= 2:
        return difference(images)
    if len(images) == 1:
        return caption(images[0])
    return " ".join(f"Image {i + 1}: {caption(seen)}" for i, seen in enumerate(images))


def dump_items(items: list) -> str:
    """JSON the way the model writes it: one entry per line."""
    if not items:
        return "[]"
    return "[\n" + ",\n".join("  " + json.dumps(item, ensure_ascii=False) for item in items) + "\n]"


_LEADS = ["", "Here are the results:\n", "Sure! Here is the JSON you asked for:\n"]
_TAILS = ["", "\nLet me know if you need anything else.", ""]


def fence(json_text: str, key: str, *, force_prose: bool = False) -> str:
    """Wrap JSON in ```json fences, sometimes with prose, chosen deterministically by `key`."""
    pick = _stable(key, len(_LEADS))
    if force_prose and pick == 0:
        pick = 2
    return f"{_LEADS[pick]}```json\n{json_text}\n```{_TAILS[pick]}"


def build_items(task: Task, images: list[SeenImage], mask: MaskEncoder | None = png_mask) -> list | None:
    """The JSON value the model would answer with; None for plain-text tasks."""
    if task.kind is TaskKind.CAPTION:
        return None
    if task.kind is TaskKind.CLASSIFY:
        return classify(task, images)
    return spatial_items(task, images, mask)


def render(items: list, *, json_mode: bool, key: str, force_prose: bool = False) -> str:
    body = dump_items(items)
    return fence(body, key, force_prose=force_prose) if (not json_mode or force_prose) else body


def answer(task: Task, images: list[SeenImage], *, json_mode: bool, key: str, force_prose: bool = False) -> Answer:
    items = build_items(task, images)
    if items is None:
        return Answer(plain_text(task, images), None)
    n_masks = sum(1 for i in items if isinstance(i, dict) and "mask" in i)
    return Answer(render(items, json_mode=json_mode, key=key, force_prose=force_prose), items, n_masks)
