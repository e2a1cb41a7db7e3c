"""The wire side of one generateContent call: what we send and what we read back.

`build_request` gives (model, contents, config) for a prompt and its images, the same for the
synchronous path (request.py) and the Batch API (batches.py); `reply_from` turns the SDK's response
into our `Reply` (text of candidate 0 without thought parts, finish and block reasons, token usage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.genai import types

from ..detections import RequestKind
from ..settings import Settings
from .client import generation_config, per_part_media_resolution
from .models import resolve
from .prompts import Prompt

BLOCK_FINISH_REASONS = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "RECITATION"}
)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    thoughts_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens: served from a context cache (billed at the cached rate)


@dataclass(frozen=True)
class Reply:
    text: str | None
    finish_reason: str | None
    block_reason: str | None
    usage: Usage
    model_version: str | None



def build_parts(images: list[types.Part], prompt_text: str) -> list[types.Part]:
    """Images first, the prompt last (docs best practice); "Image N:" labels when several."""
    parts: list[types.Part] = []
    if len(images) > 1:
        for n, image in enumerate(images, start=1):
            parts.append(types.Part.from_text(text=f"Image {n}:"))
            parts.append(image)
    else:
        parts.extend(images)
    parts.append(types.Part.from_text(text=prompt_text))
    return parts


def _with_resolution(part: types.Part, resolution: types.PartMediaResolution) -> types.Part:
    """An image part (inline or file) carrying a per-part media resolution; text parts unchanged."""
    if part.inline_data is None and part.file_data is None:
        return part
    return part.model_copy(update={"media_resolution": resolution})


def build_request(
    settings: Settings, prompt: Prompt, parts: list[types.Part], kind: RequestKind, model: str | None = None,
    history: Sequence[types.Content] = (), cached_content: str | None = None,
) -> tuple[str, list[types.Content], types.GenerateContentConfig]:
    """(model to call, contents, config) of one generateContent call for `model` (settings.model when
    None, resolved through gemini/models.py); the Batch API path sends the same. `history`: prior
    turns (few-shot examples, gemini/fewshot.py) before the request's own turn. `cached_content`: a
    context cache holding the system instruction and the history (gemini/ctxcache.py): the request
    names it and sends neither (Gemini refuses a system_instruction next to a cache)."""
    target = resolve(model or settings.model).name
    resolution = per_part_media_resolution(settings, target, prompt)
    if resolution is not None:
        parts = [_with_resolution(p, resolution) for p in parts]
    config = generation_config(settings, prompt, RequestKind(kind), target)
    if cached_content:
        config.system_instruction = None
        config.cached_content = cached_content
        history = ()
    contents = [*history, types.Content(role="user", parts=build_parts(list(parts), prompt.user))]
    return target, contents, config


def _word(value: Any) -> str | None:
    if value is None:
        return None
    value = getattr(value, "value", value)
    text = str(value).split(".")[-1].strip().upper()
    return text or None


def reply_from(response: types.GenerateContentResponse) -> Reply:
    """Our Reply from the SDK response: text of candidate 0 (thought parts skipped)."""
    candidates = response.candidates or []
    text: str | None = None
    finish: str | None = None
    if candidates:
        candidate = candidates[0]
        finish = _word(candidate.finish_reason)
        parts = (candidate.content.parts if candidate.content else None) or []
        texts = [p.text for p in parts if isinstance(p.text, str) and not p.thought]
        text = "".join(texts) if texts else None
    block = _word(response.prompt_feedback.block_reason) if response.prompt_feedback else None
    if block is None and finish in BLOCK_FINISH_REASONS and not text:
        block = finish
    meta = response.usage_metadata
    usage = Usage(
        prompt_tokens=int(getattr(meta, "prompt_token_count", 0) or 0),
        output_tokens=int(getattr(meta, "candidates_token_count", 0) or 0),
        thoughts_tokens=int(getattr(meta, "thoughts_token_count", 0) or 0),
        cached_tokens=int(getattr(meta, "cached_content_token_count", 0) or 0),
    )
    return Reply(text=text, finish_reason=finish, block_reason=block, usage=usage, model_version=response.model_version)
