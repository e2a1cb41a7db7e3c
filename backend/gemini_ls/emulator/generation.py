"""generateContent and countTokens answers: what the emulator "sees" in a request's images, the
items it answers with, their faults and mistakes, and the token usage it reports.

Pure of HTTP: each function returns the response body; handler.py sends it.
"""

from __future__ import annotations

import hashlib
import re
import time

from . import answers, dynamic, errors, families, interactive, questions, tokens, understanding, wire
from . import mistakes as mistakes_mod
from .faults import Fault
from .state import EmulatorState

_SPATIAL = (understanding.TaskKind.DETECT, understanding.TaskKind.SEGMENT)
_QUESTION = (understanding.TaskKind.ANSWER, understanding.TaskKind.NUMBER)  # questions about the whole image


def resolve_images(emu: EmulatorState, parsed: wire.ParsedRequest, key: str, *, history: bool = False) -> list[bytes]:
    """The bytes of the request's images (or of its few-shot history's), inline or from the Files API."""
    out = []
    for part in parsed.history_images if history else parsed.images:
        if part.file_id is not None:
            stored = emu.files.get(part.file_id, key)
            state = stored.current_state(time.time())
            if state != "ACTIVE":
                raise errors.file_not_active(part.file_id)
            wire.check_image_mime(part.mime_type or stored.mime_type)
            out.append(stored.data)
        else:
            wire.check_image_mime(part.mime_type)
            out.append(part.data or b"")
    return out


def count_tokens(emu: EmulatorState, raw: bytes, key: str, model: str, version: str) -> dict:
    """The countTokens answer."""
    families.check_model(model, version, "countTokens")
    body = wire.json_body(raw)
    parsed = wire.parse_generate(body)
    text_tok = tokens.text_tokens(parsed.system_text + parsed.history_text + parsed.user_text)
    seen = [emu._see(data) for data in resolve_images(emu, parsed, key, history=True) + resolve_images(emu, parsed, key)]
    inner = wire.get(body, "generateContentRequest") if isinstance(wire.get(body, "generateContentRequest"), dict) else body
    image_tok = families.image_tokens(families.family_of(model), seen, inner, parsed.media_resolution)
    return {"totalTokens": text_tok + image_tok, "promptTokensDetails": _details(text_tok, image_tok)}


def generate(emu: EmulatorState, raw: bytes, key: str, model: str, version: str, method: str, fired: list[Fault],
             mistakes_header: str | None) -> dict:
    """The generateContent answer (a GenerateContentResponse) to one request, its usage counted.
    `mistakes_header`: the request's x-emulator-mistakes header (mistakes.py)."""
    families.check_model(model, version, method)
    body = wire.json_body(raw)
    if emu.recorded.maxlen:
        with emu._lock:
            emu.recorded.append(body)
    body, cached_tok = emu.caches.expand(body, key, model)  # a context cache's contents come first (caches.py)
    parsed = wire.parse_generate(body)
    family = families.family_of(families.served_as(model))  # the model that really answers
    families.check_thinking(family, body)
    seen = [emu._see(data) for data in resolve_images(emu, parsed, key)]
    # the model looks at each image scaled to its media-resolution budget: small objects vanish
    levels = families.image_levels(family, len(seen), body, parsed.media_resolution)
    looked = [families.at_budget(family, s, level) for s, level in zip(seen, levels, strict=True)]
    history_seen = [emu._see(data) for data in resolve_images(emu, parsed, key, history=True)]  # few-shot examples
    names = {f.name: f for f in fired}
    text_tok = tokens.text_tokens(parsed.system_text + parsed.history_text + parsed.user_text)
    image_tok = families.image_tokens(family, history_seen + seen, body, parsed.media_resolution)
    prompt_tok = max(text_tok + image_tok, cached_tok)
    usage = {"promptTokenCount": prompt_tok, "promptTokensDetails": _details(text_tok, image_tok)}
    if cached_tok:
        usage["cachedContentTokenCount"] = cached_tok
    envelope = {"modelVersion": families.served_as(model), "responseId": emu._random_id(22)}

    if "safety_block" in names:
        usage["totalTokenCount"] = prompt_tok
        emu._count(prompt_tokens=prompt_tok)
        return {
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _SAFETY_RATINGS_BLOCKED},
            "usageMetadata": usage, **envelope}
    if "empty_candidates" in names:
        usage["totalTokenCount"] = prompt_tok
        emu._count(prompt_tokens=prompt_tok)
        return {"candidates": [], "usageMetadata": usage, **envelope}

    task = understanding.read_task(parsed.system_text, parsed.user_text)
    request_key = hashlib.sha256(raw).hexdigest()
    mask = families.mask_encoder(family)
    items = interactive.items_for(task, parsed.user_text, looked, mask, every="interactive_all" in names) if task.kind in _SPATIAL else None
    if items is None and task.kind in (*_SPATIAL, understanding.TaskKind.POINT):  # labels from the task
        items = dynamic.items_for(task, parsed.user_text, looked, mask)
    if items is None and task.kind in _QUESTION:
        items = questions.items_for(task, looked)
    items = items if items is not None else answers.build_items(task, looked, mask)
    if items is None:
        text = answers.plain_text(task, looked)
        n_masks = 0
    else:
        _corrupt(items, names)
        made = mistakes_mod.for_request(mistakes_header, emu.mistakes)
        items = mistakes_mod.apply(items, task, looked, made, request_key, shown=mistakes_mod.shown_labels(parsed.example_answers))
        text = answers.render(items, json_mode=parsed.json_mode, key=request_key, force_prose="prose" in names)
        n_masks = sum(1 for i in items if isinstance(i, dict) and isinstance(i.get("mask"), str))  # PNG maps; polygons are text
    cand_tok = tokens.text_tokens(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)) + answers.MASK_TOKENS * n_masks
    finish = "STOP"
    if "truncate" in names:
        fraction = float(names["truncate"].arg("fraction", 0.6))
        text = text[: max(1, int(len(text) * fraction))]
        cand_tok = max(1, int(cand_tok * fraction))
        finish = "MAX_TOKENS"
    elif parsed.max_output_tokens and cand_tok > parsed.max_output_tokens:
        text = text[: max(1, int(len(text) * parsed.max_output_tokens / cand_tok))]
        cand_tok = parsed.max_output_tokens
        finish = "MAX_TOKENS"
    thought_tok = families.thought_tokens(family, body)
    usage.update({"candidatesTokenCount": cand_tok, "totalTokenCount": prompt_tok + cand_tok + thought_tok})
    if thought_tok:
        usage["thoughtsTokenCount"] = thought_tok
    emu._count_model(model, prompt_tok, cand_tok, thought_tok)
    emu._count(prompt_tokens=prompt_tok, candidate_tokens=cand_tok)
    return {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage,
        **envelope,
    }


_SAFETY_RATINGS_BLOCKED = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


def _details(text_tok: int, image_tok: int) -> list[dict]:
    out = [{"modality": "TEXT", "tokenCount": text_tok}]
    if image_tok:
        out.append({"modality": "IMAGE", "tokenCount": image_tok})
    return out


def _corrupt(items: list, faults: dict[str, Fault]) -> None:
    """Apply the output-shape faults Gemini is known for to the answer items, in place."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if "box_2d" in item:
            y0, x0, y1, x1 = item["box_2d"]
            if "coords_inverted" in faults:
                item["box_2d"] = [y1, x1, y0, x0]
            if "coords_out_of_range" in faults:
                # What the model sometimes does: run past the frame on both sides.
                y0, x0, y1, x1 = item["box_2d"]
                item["box_2d"] = [-7, x0, y1, 1013] if y0 <= y1 else [y0, 1013, -7, x1]
        if "point" in item and "coords_out_of_range" in faults:
            item["point"] = [item["point"][0] + 1100, item["point"][1] - 1100]
        if "mask" in item:
            if "mask_tokens" in faults:
                seg = "".join(f"<seg_{(i * 7 + k * 13) % 128}>" for k in range(16))
                item["mask"] = f"<start_of_mask>{seg}"
            elif "mask_bool_list" in faults:
                item["mask"] = [True] * 16 + [False] * 8
