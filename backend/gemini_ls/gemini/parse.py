"""Turn Gemini's answer text into typed detections, choices or a caption, robustly.

Tolerates every quirk of Gemini's answer text we know of (docs/gemini-facts.md#spatial-output):

* fences: ```json, ```JSON, bare ```, indented fences, an opening fence never closed;
* prose before/after the JSON (the first JSON value that decodes is used);
* dict wrappers: {"items"|"masks"|"detections"|"objects"|"boxes"|"points"|...: [...]};
* truncation (finish MAX_TOKENS, or JSON that stops mid-way): cut after the last complete item of
  the top list and close it; the cut-off item (e.g. one with an unterminated base64 mask) is
  dropped and counted as "truncated_item";
* boxes: must be 4 numbers (numeric strings accepted); clamped to 0..1000; inverted min/max
  swapped; zero-area dropped ("bad_box");
* points: [y, x], clamped ("bad_point" otherwise);
* masks, in every format a model family answers with (gemini/models.py MaskFormat): a PNG
  probability map as "data:image/png;base64,..." or bare base64 (whitespace, missing padding and
  URL-safe alphabet tolerated), or a polygon `[[x, y], ...]` in 0-1000 of the image, one ring or a
  list of rings (3.x, Robotics-ER 1.6); <start_of_mask>/<seg_N> tokens, boolean lists, rings of
  fewer than 3 points, truncated or undecodable data keep the box with no mask and count "bad_mask";
  a polygon without a box_2d gets the polygon's bounds as its box;
* labels mapped through LabelMatcher; unknown ones dropped ("unknown_label"), never invented.

Nothing here raises on bad input: every problem becomes a count in ParsedAnswer.dropped.
Thresholding, resizing and pasting masks into the image is the region converters' job.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
from collections import Counter
from typing import Any

import numpy as np
from PIL import Image

from ..detections import NORM, Detection, DropReason, NormBox, NormPoint, ParsedAnswer, PolygonMask
from ..labelconfig import LabelSpec
from .labels import LabelMatcher, normalise

# Keys Gemini (or a schema) has been seen to wrap the item list in.
WRAPPER_KEYS = (
    "items", "masks", "detections", "objects", "boxes", "points", "results",
    "annotations", "predictions", "bounding_boxes", "segmentation_masks", "data",
)
CHOICE_KEYS = ("choices", "choice", "labels", "label", "answer", "answers", "options", "option", "classes", "class")
LABEL_KEYS = ("label", "name", "class", "category")
SCORE_KEYS = ("confidence", "score")

MAX_MASK_SIDE = 4096  # a probability map is 256x256 in practice; anything huge is garbage
MAX_JSON_STARTS = 64  # how many '[' / '{' positions to try before giving up on prose
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_FENCE = re.compile(r"```[ \t]*(?:json|javascript|js)?[ \t]*\r?\n?(.*?)```", re.IGNORECASE | re.DOTALL)
_OPEN_FENCE = re.compile(r"```[ \t]*(?:json|javascript|js)?[ \t]*\r?\n?", re.IGNORECASE)
_MASK_TOKENS = re.compile(r"<\s*(?:start_of_mask|end_of_mask|seg_\d+)\s*>", re.IGNORECASE)
_DATA_URL = re.compile(r"^data:([^;,]*)(;[^,]*)?,", re.IGNORECASE)


# --------------------------------------------------------------------------- text -> JSON value


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


# --------------------------------------------------------------------------- values


def as_number(value: Any) -> float | None:
    """A finite float from a number or a numeric string; bools and everything else are None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _clamp(value: float, lo: float = 0.0, hi: float = NORM) -> float:
    return min(max(value, lo), hi)


def parse_box(value: Any) -> NormBox | None:
    """[ymin, xmin, ymax, xmax] -> clamped, ordered NormBox; None if malformed or zero-area."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    numbers = [as_number(v) for v in value]
    if any(n is None for n in numbers):
        return None
    y0, x0, y1, x1 = numbers
    return NormBox.from_corners(y0, x0, y1, x1)  # type: ignore[arg-type]


def parse_point(value: Any) -> NormPoint | None:
    """[y, x] -> clamped NormPoint; None if malformed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict):
        value = [value.get("y"), value.get("x")]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    numbers = [as_number(v) for v in value]
    if any(n is None for n in numbers):
        return None
    return NormPoint(y=_clamp(numbers[0]), x=_clamp(numbers[1]))  # type: ignore[arg-type]


def parse_score(item: dict) -> float | None:
    """"confidence" or "score", clamped to 0..1 (values above 1 become 1, never rescaled)."""
    for key in SCORE_KEYS:
        if key in item:
            number = as_number(item[key])
            if number is not None:
                return _clamp(number, 0.0, 1.0)
    return None


def _b64decode(data: str) -> bytes | None:
    data = "".join(data.split())  # Gemini wraps long strings; JSON may carry \n
    data = data.replace("-", "+").replace("_", "/")  # URL-safe alphabet
    data = data.rstrip("=")
    if not data or len(data) % 4 == 1:  # one leftover char can never be valid: truncated
        return None
    data += "=" * (-len(data) % 4)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _to_gray(image: Image.Image) -> np.ndarray:
    """An 8-bit probability map from whatever PNG mode Gemini used.

    RGBA/LA/transparent palettes: convert("L") would throw the alpha away. When the colour is
    constant (an overlay-style mask: one colour, coverage in alpha) the alpha channel IS the
    map, so it is used; otherwise the luminance is, as for any other image.
    16-bit grey is scaled down rather than clipped, so 0..65535 keeps its shape.
    """
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA"))
        colour, alpha = rgba[..., :3], rgba[..., 3]
        if (colour == colour[0, 0]).all() and alpha.min() != alpha.max():
            return np.ascontiguousarray(alpha, dtype=np.uint8)
        return np.asarray(image.convert("RGB").convert("L"), dtype=np.uint8)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        return np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def decode_mask(value: Any) -> np.ndarray | None:
    """A uint8 (h, w) probability map from Gemini's mask value, or None if it is degenerate."""
    if not isinstance(value, str):
        return None  # [true, true, ...] lists, numbers, null
    text = value.strip()
    if not text or _MASK_TOKENS.search(text):
        return None  # <start_of_mask><seg_35>...: segmentation tokens, not an image
    data_url = _DATA_URL.match(text)
    if data_url:
        mime, params = data_url.group(1).strip().lower(), (data_url.group(2) or "").lower()
        if mime != "image/png" or "base64" not in params:
            return None
        text = text[data_url.end():]
    raw = _b64decode(text)
    if raw is None or not raw.startswith(PNG_SIGNATURE):
        return None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format != "PNG":
                return None
            width, height = image.size
            if not (0 < width <= MAX_MASK_SIDE and 0 < height <= MAX_MASK_SIDE):
                return None
            image.load()  # a truncated PNG fails here, not later in a converter
            mask = _to_gray(image)
    except Exception:  # PIL raises many types for corrupt data; all mean "no usable mask"
        return None
    return mask if mask.ndim == 2 and mask.size else None


MAX_RING_POINTS = 4096  # a real outline has tens of points; more is a looping answer


def _ring(value: Any) -> tuple[tuple[float, float], ...] | None:
    """[[x, y], ...] -> clamped (x, y) points; None unless every point is a pair of numbers."""
    if not isinstance(value, list) or not 3 <= len(value) <= MAX_RING_POINTS:
        return None
    points = []
    for point in value:
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            return None
        x, y = as_number(point[0]), as_number(point[1])
        if x is None or y is None:
            return None
        points.append((_clamp(x), _clamp(y)))
    return tuple(points)


def decode_polygon(value: Any) -> PolygonMask | None:
    """A polygon mask: one ring [[x, y], ...] or several [[[x, y], ...], ...], in 0-1000 of the image.

    Rings that are not rings (fewer than 3 points, non-numbers, no area) are left out; None when no
    ring is left. Boolean lists ([true, false, ...]) are never polygons (as_number refuses bools).
    """
    if not isinstance(value, list) or not value:
        return None
    first = value[0]
    one_ring = isinstance(first, (list, tuple)) and len(first) == 2 and not isinstance(first[0], (list, tuple))
    candidates = [value] if one_ring else value
    rings = []
    for candidate in candidates:
        ring = _ring(candidate)
        if ring is not None and _ring_area(ring) > 0:
            rings.append(ring)
    return PolygonMask(tuple(rings)) if rings else None


def _ring_area(ring: tuple[tuple[float, float], ...]) -> float:
    xs = np.array([p[0] for p in ring])
    ys = np.array([p[1] for p in ring])
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2.0)


def _image_index(item: dict, n_images: int | None) -> tuple[int, bool]:
    """(index of the request's image the item is about, whether Gemini wrote a stray index).

    A stray index (outside the request's images, negative, not a whole number) must not make the
    detection vanish: it is about the only image there is, or, with several, we cannot tell, so
    image 0. Either way it is counted, never silent."""
    if "image_index" not in item:
        return 0, False
    number = as_number(item.get("image_index"))
    if number is None or number < 0 or number != int(number) or (n_images is not None and int(number) >= n_images):
        return 0, True
    return int(number), False


def _raw_label(item: dict) -> Any:
    for key in LABEL_KEYS:
        if key in item:
            return item[key]
    return None


def _label_text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    return "" if raw is None else json.dumps(raw, ensure_ascii=False)[:200]


# --------------------------------------------------------------------------- public parsers


def parse_detections(
    text: str | None,
    *,
    matcher: LabelMatcher,
    finish_reason: str | None = None,
    want_masks: bool = False,
    want_points: bool = False,
    n_images: int | None = None,
) -> ParsedAnswer:
    """Detections (boxes, and masks or points when asked for) from one answer text about
    `n_images` images (each detection's `image_index` is below it; None: not bounded)."""
    value, truncated, lost, found = load_answer(text, finish_reason)
    dropped: Counter[DropReason] = Counter()
    if lost:
        dropped["truncated_item"] += lost
    if not found:
        if text is not None and text.strip() and not lost:
            dropped["no_json"] += 1
        return ParsedAnswer(truncated=truncated, dropped=dict(dropped), finish_reason=normalise_finish_reason(finish_reason))
    items = unwrap_items(value)
    if items is None:
        dropped["not_an_object"] += 1
        return ParsedAnswer(truncated=truncated, dropped=dict(dropped), finish_reason=normalise_finish_reason(finish_reason))

    detections: list[Detection] = []
    for item in items:
        detection, reasons = _detection(item, matcher, want_masks=want_masks, want_points=want_points, n_images=n_images)
        dropped.update(reasons)
        if detection is not None:
            detections.append(detection)
    return ParsedAnswer(
        detections=tuple(detections), truncated=truncated, dropped=dict(dropped), finish_reason=normalise_finish_reason(finish_reason)
    )


def _detection(
    item: Any, matcher: LabelMatcher, *, want_masks: bool, want_points: bool, n_images: int | None
) -> tuple[Detection | None, list[DropReason]]:
    """One item -> (Detection or None, reasons to count). Order of checks = reason priority."""
    if not isinstance(item, dict):
        return None, ["not_an_object"]
    raw = _raw_label(item)
    label = matcher.match(raw) if isinstance(raw, str) else None
    if label is None:
        return None, ["unknown_label"]
    box = point = mask = polygon = None
    reasons: list[DropReason] = []
    if want_points:
        point = parse_point(item.get("point"))
        if point is None:
            return None, ["bad_point"]
        box = parse_box(item.get("box_2d")) if "box_2d" in item else None
    else:
        box = parse_box(item.get("box_2d", item.get("box")))
        if want_masks:
            raw_mask = item.get("mask")
            if isinstance(raw_mask, list):
                polygon = decode_polygon(raw_mask)
                if box is None and polygon is not None:
                    bounds = polygon.bounds()
                    box = bounds if bounds.area > 0 else None
            else:
                mask = decode_mask(raw_mask)
            if box is not None and mask is None and polygon is None:
                reasons.append("bad_mask")  # the box is still worth a rectangle
        if box is None:
            return None, ["bad_box"]
    index, stray = _image_index(item, n_images)
    if stray:
        reasons.append("stray_image_index")
    return (
        Detection(
            label=label,
            raw_label=_label_text(raw),
            box=box,
            point=point,
            mask=mask,
            score=parse_score(item),
            image_index=index,
            polygon=polygon,
        ),
        reasons,
    )


def _choice_candidates(value: Any) -> list[Any]:
    """Flatten a decoded choices answer to the strings (or odd values) it names."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            out.extend(_choice_candidates(v) if isinstance(v, (dict, list)) else [v])
        return out
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        for key in CHOICE_KEYS:
            if key in lowered:
                return _choice_candidates(lowered[key])
        strings = [v for v in value.values() if isinstance(v, (str, list))]
        if len(strings) == 1:
            return _choice_candidates(strings[0])
        return [value]
    return [value]


def _options_named_in(text: str, choices: tuple[LabelSpec, ...]) -> list[str]:
    """Choice values named in prose, in order of first mention (whole words, case-insensitive)."""
    hay = normalise(text)
    found: list[tuple[int, int, str]] = []
    for choice in choices:
        for name in (choice.value, choice.hint):
            if not name or not normalise(name):
                continue
            pattern = r"(?<!\w)" + re.escape(normalise(name)) + r"(?!\w)"
            hit = re.search(pattern, hay)
            if hit:
                # Earliest mention first; a longer name at the same place wins ("dark grey" over "grey").
                found.append((hit.start(), -len(hit.group(0)), choice.value))
    found.sort()
    ordered: list[str] = []
    covered: list[tuple[int, int]] = []
    for start, neg_len, value in found:
        end = start - neg_len
        if any(s <= start and end <= e for s, e in covered):
            continue  # "grey" inside an already-taken "dark grey"
        covered.append((start, end))
        if value not in ordered:
            ordered.append(value)
    return ordered


def parse_choices(
    text: str | None,
    choices: tuple[LabelSpec, ...],
    multiple: bool,
    finish_reason: str | None = None,
) -> ParsedAnswer:
    """Chosen option values from a JSON list, a JSON string, a dict wrapper or plain prose."""
    if text is None or not text.strip():
        return ParsedAnswer(truncated=normalise_finish_reason(finish_reason) == "MAX_TOKENS")
    matcher = LabelMatcher(choices)
    value, truncated, lost, found = load_answer(text, finish_reason)
    dropped: Counter[DropReason] = Counter()
    if lost:
        dropped["truncated_item"] += lost
    chosen: list[str] = []
    if found:
        for candidate in _choice_candidates(value):
            hit = matcher.match(candidate) if isinstance(candidate, str) else None
            if hit is None:
                dropped["unknown_label" if isinstance(candidate, str) else "not_an_object"] += 1
            elif hit not in chosen:
                chosen.append(hit)
    else:
        plain = strip_fences(text)
        try:
            decoded = json.loads(plain)  # a bare JSON string: "cat"
        except ValueError:
            decoded = None
        whole = matcher.match(decoded if isinstance(decoded, str) else plain)
        chosen = [whole] if whole is not None else _options_named_in(plain, choices)
        if not chosen:
            dropped["unknown_label"] += 1
    if not multiple and len(chosen) > 1:
        dropped["extra_choice"] += len(chosen) - 1
        chosen = chosen[:1]
    return ParsedAnswer(
        choices=tuple(chosen), truncated=truncated, dropped=dict(dropped), finish_reason=normalise_finish_reason(finish_reason)
    )


_QUOTES = (('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("`", "`"))


def parse_text(text: str | None, finish_reason: str | None = None) -> ParsedAnswer:
    """A caption: fences and wrapping quotes stripped, whitespace collapsed; None if nothing left."""
    truncated = normalise_finish_reason(finish_reason) == "MAX_TOKENS"
    if text is None:
        return ParsedAnswer(truncated=truncated)
    body = strip_fences(text) if "```" in text else text
    body = " ".join(body.split())
    if body.startswith('"') and body.endswith('"') and len(body) >= 2:
        try:
            decoded = json.loads(body)  # a JSON string keeps its escapes right
            if isinstance(decoded, str):
                body = " ".join(decoded.split())
        except ValueError:
            pass
    changed = True
    while changed and len(body) >= 2:
        changed = False
        for left, right in _QUOTES:
            if body.startswith(left) and body.endswith(right) and len(body) >= len(left) + len(right):
                body = body[len(left) : len(body) - len(right)].strip()
                changed = True
    return ParsedAnswer(text=body or None, truncated=truncated)
