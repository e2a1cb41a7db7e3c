"""Lenient JSON recovery: the first usable JSON value in a model's answer text.

Fences (```json, bare, indented, never closed), prose before and after the JSON, trailing commas,
wrapper objects ({"items": [...]}) and answers cut off mid-way (finish MAX_TOKENS): a cut-off top
list is closed after its last complete item and the cut-off item counted as lost. Nothing here
raises on bad input. Used by the per-kind assemblers in parse.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Keys Gemini (or a schema) has been seen to wrap the item list in.
WRAPPER_KEYS = (
    "items", "masks", "detections", "objects", "boxes", "points", "results",
    "annotations", "predictions", "bounding_boxes", "segmentation_masks", "data",
)

MAX_JSON_STARTS = 64  # how many '[' / '{' positions to try before giving up on prose

_FENCE = re.compile(r"```[ \t]*(?:json|javascript|js)?[ \t]*\r?\n?(.*?)```", re.IGNORECASE | re.DOTALL)
_OPEN_FENCE = re.compile(r"```[ \t]*(?:json|javascript|js)?[ \t]*\r?\n?", re.IGNORECASE)


def normalise_finish_reason(finish_reason: object) -> str | None:
    """Normalise "FinishReason.MAX_TOKENS", an enum or "max_tokens" to "MAX_TOKENS"."""
    if finish_reason is None:
        return None
    value = getattr(finish_reason, "value", finish_reason)
    return str(value).split(".")[-1].strip().upper() or None


def strip_fences(text: str) -> str:
    """The content of the first fenced block, or of an opening fence never closed, else the text."""
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1)
    opened = _OPEN_FENCE.search(text)
    if opened:  # truncated answers lose their closing fence
        return text[opened.end():]
    return text


_START = re.compile(r"[\[{]")


def _next_start(text: str, pos: int) -> int | None:
    found = _START.search(text, pos)
    return found.start() if found else None


def _is_useful(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and (not value or any(isinstance(v, (dict, list, str)) for v in value))


# Tokens of the structure scanner: a closed string, a string the text ends inside, a bracket or
# comma, or a run of scalar characters. Regex-driven so a 100 kB base64 mask costs one C-level match.
_SCAN_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"[^"\\]*(?:\\.[^"\\]*)*\\?\Z|[\[\]{},]|[^\s\[\]{},":]+')


def scan(text: str, start: int) -> tuple[list[int], int | None]:
    """Walk the list/object opening at `start`: (ends of its complete elements, its close position).

    `ends` are positions just after each element that finished (a closed object/list, a closed
    string, or a scalar followed by ','); the close position is None when the text ends first,
    i.e. the answer was cut off. Knows strings and escapes, so brackets inside a mask never count.
    """
    ends: list[int] = []
    depth = 0
    scalar_open = False
    for token in _SCAN_TOKEN.finditer(text, start):
        tok = token.group(0)
        first = tok[0]
        if first == '"':
            if len(tok) < 2 or not tok.endswith('"') or _escaped_close(tok):
                return ends, None  # the text ends inside this string
            if depth == 1:
                ends.append(token.end())
        elif first in "[{":
            depth += 1
        elif first in "]}":
            depth -= 1
            if depth == 0:
                if scalar_open:
                    ends.append(token.start())
                return ends, token.end()
            if depth == 1:
                ends.append(token.end())
        elif first == ",":
            if depth == 1 and scalar_open:
                ends.append(token.start())
            scalar_open = False
        elif depth == 1:
            scalar_open = True
    return ends, None


def _escaped_close(tok: str) -> bool:
    """True when a token ending in '"' is really an unterminated string ending in an escape (\\")."""
    backslashes = len(tok) - 1 - len(tok[:-1].rstrip("\\"))
    return len(tok) >= 2 and backslashes % 2 == 1


_TRAILING_COMMA = re.compile(r",\s*([\]}])")


_WRAPPER_OPEN = re.compile(r'\{\s*"[^"]{1,40}"\s*:\s*\[')


def _recover_list(text: str, start: int) -> tuple[list | None, int]:
    """(items, lost) for the cut-off list (or wrapper object holding one) opening at `start`."""
    wrapped = text[start] == "{"
    if wrapped:
        # {"items": [ ... cut off: recover the first list inside the wrapper
        match = _WRAPPER_OPEN.match(text, start)
        if not match:
            return None, 0
        start = match.end() - 1
    ends, closed_at = scan(text, start)
    if closed_at is not None:
        if not wrapped:
            return None, 0
        body, lost = text[start:closed_at], 0  # the list is whole; only the wrapper was cut
    elif not ends:
        return [], 1 if text[start + 1 :].strip(" \t\r\n,`") else 0
    else:
        body = text[start : ends[-1]] + "]"
        lost = 1 if text[ends[-1] :].strip(" \t\r\n,`") else 0
    try:
        items = json.loads(body)
    except (ValueError, RecursionError):
        return None, 0
    if not isinstance(items, list):
        return None, 0
    if wrapped and not all(isinstance(item, dict) for item in items):
        return None, 0  # {"box_2d": [1, 2, ... is a cut-off item, not a wrapper of items
    return items, lost


def decode_answer(text: str) -> tuple[Any, bool, int, bool]:
    """(value, truncated, lost_items, found) for the first usable JSON value in `text`.

    Walks the '[' / '{' positions in order. A value that decodes is used (prose after it is
    ignored); a structure that closes but does not decode is retried without trailing commas,
    then skipped whole (prose like "[see below]"); a structure the text ends inside is a
    truncated answer and is repaired. A decoded value that cannot carry items (e.g. "[1]" in
    prose) is only a fallback. When a cut-off structure cannot be repaired, only a value that
    can carry items is accepted after it (anything smaller is a fragment of the broken one).
    """
    decoder = json.JSONDecoder()
    fallback: tuple[Any, bool, int, bool] = (None, False, 0, False)
    unrepaired = False
    pos = tries = 0
    while tries < MAX_JSON_STARTS:
        start = _next_start(text, pos)
        if start is None:
            break
        tries += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            value, end = None, None
        if end is not None:
            if _is_useful(value):
                return value, False, 0, True
            if not fallback[3] and not unrepaired:
                fallback = (value, False, 0, True)
            pos = end
            continue
        _, closed_at = scan(text, start)
        if closed_at is None:
            items, lost = _recover_list(text, start)
            if items is not None:
                return items, True, lost, True
            unrepaired = True
            pos = start + 1
            continue
        try:
            value = json.loads(_TRAILING_COMMA.sub(r"\1", text[start:closed_at]))
            if _is_useful(value):
                return value, False, 0, True
        except (ValueError, RecursionError):
            pass
        pos = closed_at
    if unrepaired and not fallback[3]:
        return None, True, 1, False
    return fallback


def load_answer(text: str | None, finish_reason: object = None) -> tuple[Any, bool, int, bool]:
    """(value, truncated, lost_items, found) for an answer text: fences off, prose off, repaired."""
    truncated = normalise_finish_reason(finish_reason) == "MAX_TOKENS"
    if text is None or not text.strip():
        return None, truncated, 0, False
    body = strip_fences(text)
    value, repaired, lost, found = decode_answer(body)
    if not found and body is not text:
        value, repaired, lost, found = decode_answer(text)
    return value, truncated or repaired, lost, found


def unwrap_items(value: Any) -> list | None:
    """The item list inside a decoded answer, or None when there is none."""
    if isinstance(value, list):
        # [[{...}, {...}]]: a list wrapped once more
        if len(value) == 1 and isinstance(value[0], list):
            return value[0]
        return value
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        for key in WRAPPER_KEYS:
            if isinstance(lowered.get(key), list):
                return lowered[key]
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1 and all(isinstance(v, dict) for v in lists[0]):
            return lists[0]
        if any(k in lowered for k in ("box_2d", "point", "mask")):
            return [value]  # a single item sent without its list
    return None
