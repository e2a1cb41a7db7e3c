"""Reading a prompt: what kind of answer is wanted and which objects each label means.

The backend's prompts (gemini/prompts.py) list targets as `- "<label>": <description>` or
`- "<label>"`; free prompts such as "Detect the red squares" work too. Colour and shape words
(singular or plural, a few synonyms) pick objects; a target naming neither picks nothing, the way
Gemini returns nothing for labels it cannot see.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass

from .scenes import COLOURS, SHAPES


class TaskKind(str, enum.Enum):
    DETECT = "detect"
    SEGMENT = "segment"
    POINT = "point"
    CLASSIFY = "classify"
    CAPTION = "caption"
    ANSWER = "answer"  # questions about the image, each answered in a few words (questions.py)
    NUMBER = "number"  # one number about the image: a count or a rating (questions.py)


_COLOUR_WORDS = {c: c for c in COLOURS} | {
    "violet": "purple",
    "pink": "magenta",
    "fuchsia": "magenta",
    "teal": "cyan",
    "turquoise": "cyan",
    "aqua": "cyan",
    "gold": "yellow",
}
_SHAPE_WORDS = {s: s for s in SHAPES} | {
    "squares": "square",
    "rectangles": "rectangle",
    "rectangular": "rectangle",
    "circles": "circle",
    "circular": "circle",
    "round": "circle",
    "disc": "circle",
    "discs": "circle",
    "disk": "circle",
    "disks": "circle",
    "dot": "circle",
    "dots": "circle",
    "triangles": "triangle",
    "triangular": "triangle",
}
# a target naming text is lines of text (read by OCR), handwriting when it says so
_HANDWRITING_WORDS = {"handwriting", "handwritten", "handwrite", "written", "script", "cursive"}
_TEXT_WORDS = {"text", "texts", "printed", "print", "typed", "typewritten", "line", "lines", "word", "words", "ocr"}
_GENERIC_WORDS = {"object", "objects", "shape", "shapes", "thing", "things", "item", "items", "everything", "anything", "all"}

_TARGET_LINE = re.compile(r'^\s*-\s*("(?:[^"\\]|\\.)*")\s*(?::\s*(.*))?$')
_LIMIT = re.compile(r"limit to (\d+)", re.IGNORECASE)
# the backend's textunits.py sentence: "Where an entry is text, it is one line of text: ..."
_TEXT_UNIT = re.compile(r"where an entry is text, it is one (line|word|block)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """A label and the colours/shapes it means (empty set = any; both empty = nothing)."""

    label: str
    colours: frozenset[str]
    shapes: frozenset[str]
    generic: bool = False  # "objects", "everything": matches all when no colour/shape is named
    # "printed" or "handwriting": the target is lines of text of that ink (ocr.py), None: shapes
    text_kind: str | None = None

    def matches(self, colour: str, shape: str) -> bool:
        if shape == "text":  # a line of text, its ink as its colour
            return self.text_kind == colour
        if not self.colours and not self.shapes:
            return self.generic
        return (not self.colours or colour in self.colours) and (not self.shapes or shape in self.shapes)


@dataclass(frozen=True)
class Task:
    kind: TaskKind
    targets: tuple[Target, ...]  # detection/segmentation/pointing targets, or classification options
    free_form: bool  # no target lines: labels are the objects' own names
    limit: int | None
    multiple: bool  # classification: "all options that apply"
    differ: bool  # caption: asked what differs between images
    text: str
    text_unit: str = "line"  # where a target is text: one item per line | word | block (ocr.py)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def describe(label: str, description: str | None, *, allow_generic: bool = False) -> Target:
    toks = words(f"{label} {description or ''}")
    colours = frozenset(_COLOUR_WORDS[t] for t in toks if t in _COLOUR_WORDS)
    shapes = frozenset(_SHAPE_WORDS[t] for t in toks if t in _SHAPE_WORDS)
    generic = allow_generic and any(t in _GENERIC_WORDS for t in toks)
    text_kind = None
    if any(t in _HANDWRITING_WORDS for t in toks):
        text_kind = "handwriting"
    elif any(t in _TEXT_WORDS for t in toks):
        text_kind = "printed"
    return Target(label, colours, shapes, generic, text_kind)


def target_lines(text: str) -> list[tuple[str, str | None]]:
    out = []
    for line in text.splitlines():
        m = _TARGET_LINE.match(line)
        if not m:
            continue
        try:
            label = json.loads(m.group(1))
        except json.JSONDecodeError:
            continue
        out.append((label, (m.group(2) or "").strip() or None))
    return out


def kind_of(text: str) -> TaskKind:
    low = text.lower()
    if re.search(r"answer each question about (the image|these images)", low):  # first: a question may say "find"
        return TaskKind.ANSWER
    if "output a json list holding just that number" in low:
        return TaskKind.NUMBER
    if "classify" in low and ("choose" in low or "from this list" in low):
        return TaskKind.CLASSIFY
    if "segmentation mask" in low or re.search(r"\bsegment", low):
        return TaskKind.SEGMENT
    if "box_2d" in low or "bounding box" in low:
        return TaskKind.DETECT
    if re.search(r"\bpoint(s)? to\b|\"point\"|\bpoint\b", low):
        return TaskKind.POINT
    if re.search(r"\b(detect|find|locate|show me the positions)\b", low):
        return TaskKind.DETECT
    return TaskKind.CAPTION


def read_task(system_text: str, user_text: str) -> Task:
    """Interpret the whole prompt (system instruction + user text parts)."""
    text = f"{system_text}\n{user_text}".strip()
    kind = kind_of(text)
    lines = target_lines(user_text) or target_lines(system_text)
    if lines:
        targets = tuple(describe(label, desc) for label, desc in lines)
        free_form = False
    elif kind in (TaskKind.DETECT, TaskKind.SEGMENT, TaskKind.POINT):
        # Free prompt: the request itself names what to find; labels become object names.
        targets = (describe("", user_text or system_text, allow_generic=True),)
        free_form = True
    else:
        targets, free_form = (), True
    limits = [int(n) for n in _LIMIT.findall(text)]
    low = text.lower()
    return Task(
        kind=kind,
        targets=targets,
        free_form=free_form,
        limit=min(limits) if limits else None,
        multiple="all options that apply" in low or "all that apply" in low,
        differ=bool(re.search(r"\bdiffer|\bdifference", low)),
        text=text,
        text_unit=unit.group(1).lower() if (unit := _TEXT_UNIT.search(text)) else "line",
    )
