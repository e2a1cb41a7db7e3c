"""Reading text (OCR): the unit of text one region is, per control (`model_ocr_granularity`).

A region control reads text when its config says so (`model_ocr_granularity="line|word|block"`) or
when its regions carry a per-region `<TextArea>` (a transcription, as in Label Studio's OCR
template), then at the default unit, a line. Its spatial request then tells Gemini which unit one
entry is, in one sentence put with the control's `model_prompt` (the emulator reads the same
sentence, emulator/understanding.py). A control that reads no text gets no sentence, so the prompts
of other configs do not change.
"""

from __future__ import annotations

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


def text_unit(granularity: str | None, attribute_tags: Iterable[str]) -> str | None:
    """The unit of text a control's regions are (its `model_ocr_granularity`, the tags of its
    per-region controls), None when it reads no text."""
    if granularity is not None:
        return granularity
    return DEFAULT_GRANULARITY if "TextArea" in attribute_tags else None


def unit_sentence(unit: str) -> str:
    return f"Where an entry is text, it is {_UNITS[unit]}."


def with_unit(question: str | None, unit: str | None) -> str | None:
    """A spatial prompt's extra text: the unit sentence (when reading text), then `model_prompt`."""
    parts = [unit_sentence(unit)] if unit else []
    if question:
        parts.append(question)
    return "\n".join(parts) or None
