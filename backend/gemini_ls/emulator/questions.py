"""Questions about a whole image, answered from what the emulator sees in its pixels: the objects the
segmenter found (their colour and shape) and nothing else.

Two prompt shapes (the backend's gemini/questions.py and gemini/numbers.py):
    Answer each question about the image ... then lines - "<name>": <question>
        -> [{"question": "<name>", "answer": "<a few words>"}, ...]
    <question> ... Output a JSON list holding just that number.   -> [n]

Understood: counts ("how many red circles?" -> "2"), colours ("what colour is the square?" ->
"blue"), shapes ("what shape is the green object?" -> "triangle"), presence ("is there a yellow
triangle?" -> "yes" / "no"). Anything else gets the image's caption, the way a model answers
loosely. A number request counts the objects its question names (all of them when it names no
colour or shape); a rating (the prompt asks for a whole number with a range, and the question names
no colour or shape: "quality", "clutter") is how many objects the image holds, within the range.
"""

from __future__ import annotations

import re

from .answers import caption
from .understanding import Task, TaskKind, describe, target_lines, words
from .vision import SeenImage, SeenObject

_RANGE = re.compile(r"from (-?[\d.]+) to (-?[\d.]+)")
_COUNT = re.compile(r"\bhow many\b|\bcount\b|\bnumber of\b")
_COLOUR_Q = re.compile(r"\b(what|which)\s+colou?rs?\b|\bcolou?r\b.*\?")
_SHAPE_Q = re.compile(r"\b(what|which)\s+shapes?\b|\bshape\b.*\?")
_YES_NO = ("is", "are", "does", "do", "can", "any", "has", "have")


def _objects(images: list[SeenImage]) -> list[SeenObject]:
    return [o for seen in images for o in seen.objects]


def _named(question: str, objects: list[SeenObject], *, by_colour: bool = True, by_shape: bool = True) -> list[SeenObject]:
    """The objects the question's colour and shape words pick (every object when it names neither)."""
    target = describe("", question)
    colours = target.colours if by_colour else frozenset()
    shapes = target.shapes if by_shape else frozenset()
    return [o for o in objects if (not colours or o.colour in colours) and (not shapes or o.shape in shapes)]


def _join(values: list[str]) -> str:
    unique = list(dict.fromkeys(values))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]


def answer_question(question: str, images: list[SeenImage]) -> str:
    """A short answer, from the pixels."""
    low = question.lower()
    objects = _objects(images)
    if _COUNT.search(low):
        return str(len(_named(question, objects)))
    if _COLOUR_Q.search(low):  # the colour is what is asked: pick by shape only
        picked = _named(question, objects, by_colour=False)
        return _join([o.colour for o in picked]) if picked else "I don't see one."
    if _SHAPE_Q.search(low):
        picked = _named(question, objects, by_shape=False)
        return _join([o.shape for o in picked]) if picked else "I don't see one."
    toks = words(low)
    if toks and toks[0] in _YES_NO:
        target = describe("", question)
        if target.colours or target.shapes:
            return "yes" if _named(question, objects) else "no"
    return caption(images[0]) if images else "I don't see any image."


def items_for(task: Task, images: list[SeenImage]) -> list | None:
    """The JSON answer: one entry per question listed ({"question", "answer"}), or a number request's
    [n]; None for the other kinds."""
    if task.kind is TaskKind.ANSWER:
        return [{"question": name, "answer": answer_question(question or "", images)} for name, question in target_lines(task.text)]
    if task.kind is not TaskKind.NUMBER:
        return None
    value = number_answer(task.text, images)
    return [int(value) if value.is_integer() else value]


def number_answer(text: str, images: list[SeenImage]) -> float:
    """The number a Number / Rating request gets: a count, or a rating within the asked range."""
    objects = _objects(images)
    rng = _RANGE.search(text)
    low, high = (float(rng.group(1)), float(rng.group(2))) if rng else (None, None)
    question = text.lower().split("answer this about", 1)[0]
    target = describe("", question)
    if "whole number" in text.lower() and high is not None and not (target.colours or target.shapes):
        return float(min(high, max(low if low is not None else 0.0, len(objects))))
    return float(len(_named(question, objects)))
