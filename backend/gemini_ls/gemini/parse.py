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

This module assembles the answer of each request kind (detections, choices, a caption); the
text -> JSON recovery is lenient_json.py, an item's fields item_fields.py, masks mask_decode.py.
Nothing here raises on bad input: every problem becomes a count in ParsedAnswer.dropped.
Thresholding, resizing and pasting masks into the image is the region converters' job.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from ..detections import Detection, DropReason, ParsedAnswer
from ..labelconfig import AttributeSpec, LabelSpec
from .attribute_values import parse_attributes
from .item_fields import as_number, parse_box, parse_point, parse_score
from .labels import LabelMatcher, normalise
from .lenient_json import load_answer, normalise_finish_reason, strip_fences, unwrap_items
from .mask_decode import decode_mask, decode_polygon

CHOICE_KEYS = ("choices", "choice", "labels", "label", "answer", "answers", "options", "option", "classes", "class")
LABEL_KEYS = ("label", "name", "class", "category")


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
    asked: tuple[tuple[AttributeSpec, tuple[str, ...] | None], ...] = (),
) -> ParsedAnswer:
    """Detections (boxes, and masks or points when asked for) from one answer text about
    `n_images` images (each detection's `image_index` is below it; None: not bounded), with the
    per-region attributes `asked` (plan.PlannedRequest.attributes)."""
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
        detection, reasons = _detection(item, matcher, want_masks=want_masks, want_points=want_points, n_images=n_images,
                                        asked=asked)
        dropped.update(reasons)
        if detection is not None:
            detections.append(detection)
    return ParsedAnswer(
        detections=tuple(detections), truncated=truncated, dropped=dict(dropped), finish_reason=normalise_finish_reason(finish_reason)
    )


def _detection(
    item: Any, matcher: LabelMatcher, *, want_masks: bool, want_points: bool, n_images: int | None,
    asked: tuple[tuple[AttributeSpec, tuple[str, ...] | None], ...] = (),
) -> tuple[Detection | None, list[DropReason]]:
    """One item -> (Detection or None, reasons to count). Order of checks = reason priority."""
    if not isinstance(item, dict):
        return None, ["not_an_object"]
    raw = _raw_label(item)
    answered = matcher.answered(raw) if isinstance(raw, str) else None
    label = matcher.renamed(answered)
    if label is None or answered is None:
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
            answered=answered,
            attributes=parse_attributes(item, asked, label),
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
    synonyms: tuple[tuple[str, str], ...] = (),
) -> ParsedAnswer:
    """Chosen option values from a JSON list, a JSON string, a dict wrapper or plain prose."""
    if text is None or not text.strip():
        return ParsedAnswer(truncated=normalise_finish_reason(finish_reason) == "MAX_TOKENS")
    matcher = LabelMatcher(choices, synonyms=synonyms)  # learned synonyms apply to choices too
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
