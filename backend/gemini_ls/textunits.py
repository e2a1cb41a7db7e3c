"""Reading text (OCR): the unit of text one region is, per control (`model_ocr_granularity`).

A region control reads text when its config says so (`model_ocr_granularity="line|word|block"`) or
when its regions carry a per-region `<TextArea>` that transcribes (no question, or one that speaks
of text, as Label Studio's OCR template's "Recognized Text"), then at the default unit, a line.
Its spatial request then tells Gemini which unit one entry is, in one sentence put with the
control's `model_prompt` (the emulator reads the same sentence, emulator/understanding.py). A
control that reads no text gets no sentence, so the prompts of other configs do not change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

GRANULARITIES = ("line", "word", "block")
DEFAULT_GRANULARITY = "line"
# A control reading text is told to list at least this many of its unit unless it sets
# model_max_objects: a page holds more lines than MODEL_MAX_OBJECTS' 25 objects (a 30-line page lost
# 5 lines as the OCR template ships, tests/benchmarks/README.md "OCR"), and each entry is short.
TEXT_MAX_OBJECTS = {"line": 100, "word": 250, "block": 50}

# "Where an entry is text, it is one <unit>": the wording the emulator parses (keep them in step)
_UNITS = {
    "line": "one line of text: its box around that whole line, never several lines together nor single words",
    "word": "one word: its box around that word alone, never a whole line",
    "block": "one block of text (a paragraph): its box around all of the block's lines together, never single lines",
}


def parse_granularity(raw: str | None) -> str | None:
    """`model_ocr_granularity` as written (None when absent); ValueError for another unit."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value not in GRANULARITIES:
        raise ValueError(f"model_ocr_granularity={raw!r}: one of {', '.join(GRANULARITIES)}")
    return value


# Words of a per-region TextArea's question (model_prompt, placeholder or hint) that say it holds the
# region's text (Label Studio's OCR template: placeholder "Recognized Text"); a TextArea asking for
# something else ("Describe the object") is a description, not a transcription.
_TEXT_WORDS = re.compile(r"\b(text|transcri\w*|recogni\w*|ocr|read\w*|written|writing)\b", re.IGNORECASE)


def transcribes(tag: str, question: str | None) -> bool:
    """Whether a per-region control holds its region's text: a TextArea without a question, or whose
    question speaks of text."""
    return tag == "TextArea" and (question is None or bool(_TEXT_WORDS.search(question)))


def text_unit(granularity: str | None, attributes: Iterable[tuple[str, str | None]]) -> str | None:
    """The unit of text a control's regions are (its `model_ocr_granularity`; else a line when one of
    its per-region controls, as (tag, question), transcribes), None when it reads no text."""
    if granularity is not None:
        return granularity
    return DEFAULT_GRANULARITY if any(transcribes(tag, question) for tag, question in attributes) else None


def unit_sentence(unit: str) -> str:
    return f"Where an entry is text, it is {_UNITS[unit]}."


def with_unit(question: str | None, unit: str | None) -> str | None:
    """A spatial prompt's extra text: the unit sentence (when reading text), then `model_prompt`."""
    parts = [unit_sentence(unit)] if unit else []
    if question:
        parts.append(question)
    return "\n".join(parts) or None
