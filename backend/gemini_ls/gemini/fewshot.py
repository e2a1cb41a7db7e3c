"""Few-shot on the wire: worked examples as prior conversation turns of a Gemini request.

An example comes typed (plan.PlanExample: its images and the answer its request should get, as
review/fewshot.py chose and read it); nothing here sees a Label Studio result. Each example is one
user turn (its image(s), then the same prompt text the task gets) followed by one model turn: the
typed answer rendered in exactly the JSON the prompt asks for (box_2d as [ymin, xmin, ymax, xmax]
in 0-1000, masks as a PNG of the box, points as [y, x], choices as a list of names), so the model
sees worked answers in its own output format. Gemini's documented way to give examples is such a
multi-turn `contents`; the task's own turn comes last.

- `render_answer` / `example_turns` / `history_contents` are pure.
- `FewShotWire.contents_for(plan, prompt, ...)` is the one function that gives the extra contents of
  a plan: example images go through the Files API cache (files.py: uploaded once, referenced by URI
  by every later task), and the examples are kept within FEW_SHOT_MAX_TOKENS input tokens, counted
  exactly once per example, prompt and model by countTokens (cached). An example that cannot be
  counted or does not fit is left out with a log line; nothing here fails a task.
- With FEW_SHOT_CACHE on, examples that reach the model's minimum cacheable size go into a context
  cache (ctxcache.py) with the system instruction; the request then names the cache instead of
  carrying them, and Gemini bills them at the cached rate.
- What the examples cost (their input tokens per request) goes to /metrics and to a usage record
  per example set (Redis when configured), which `gemini-ls report` shows.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from google.genai import types
from PIL import Image, ImageDraw

from ..detections import Detection, NormBox, ParsedAnswer, RequestKind
from ..plan import PlannedRequest, example_set_tag
from .ctxcache import ContextCaches, min_cache_tokens
from .models import resolve
from .prompts import Prompt
from .wire import build_parts

log = logging.getLogger(__name__)

MASK_SIDE = 64  # an example mask's longest side in pixels: its base64 PNG stays a few hundred characters


# ------------------------------------------------------------------------------------ pure rendering


def _box_2d(box: NormBox) -> list[int]:
    return [int(round(min(1000.0, max(0.0, v)))) for v in (box.ymin, box.xmin, box.ymax, box.xmax)]


def _png(mask: np.ndarray) -> str:
    im = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    scale = MASK_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def box_mask(det: Detection) -> str:
    """The detection's mask inside its box as the PNG Gemini answers with: its map thresholded, its
    outlines drawn at MASK_SIDE, or, with neither (a rectangle), the whole box."""
    assert det.box is not None
    if det.mask is not None:
        return _png(det.mask > 127)
    if det.polygon is not None:
        b = det.box
        bw, bh = max(1e-5, b.xmax - b.xmin), max(1e-5, b.ymax - b.ymin)
        w, h = (MASK_SIDE, max(1, round(MASK_SIDE * bh / bw))) if bw >= bh else (max(1, round(MASK_SIDE * bw / bh)), MASK_SIDE)
        im = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(im)
        for ring in det.polygon.rings:
            draw.polygon([((x - b.xmin) / bw * w, (y - b.ymin) / bh * h) for x, y in ring], fill=255)
        return _png(np.asarray(im) > 0)
    return _png(np.ones((8, 8), bool))


def _attributes(det: Detection) -> dict[str, Any]:
    """The region's per-region answers as the prompt asks for them (nothing when it has none)."""
    if not det.attributes:
        return {}
    return {"attributes": {name: list(v) if isinstance(v, tuple) else v for name, v in det.attributes}}


def render_answer(kind: RequestKind, answer: ParsedAnswer) -> str | None:
    """A typed example answer as the JSON the prompt of `kind` asks for (box_2d as [ymin, xmin, ymax,
    xmax] in 0-1000, masks as a PNG of the box, points as [y, x], choices as a list of names, the
    confidence 1.0: an annotator's answer); None when the kind takes no examples (captions) or the
    answer is empty. Which items an example shows was chosen with it (review/fewshot.py)."""
    if kind is RequestKind.CHOICE:
        return json.dumps(list(answer.choices), ensure_ascii=False) if answer.choices else None
    if kind is RequestKind.TEXT:
        return None
    items: list[Any] = []
    for det in answer.detections:
        if kind is RequestKind.POINTS:
            if det.point is None:
                continue
            items.append({"point": [int(round(det.point.y)), int(round(det.point.x))], "label": det.label, "confidence": 1.0,
                          **_attributes(det)})
            continue
        if det.box is None:
            continue
        item: dict[str, Any] = {"box_2d": _box_2d(det.box)}
        if kind is RequestKind.MASKS:
            item["mask"] = box_mask(det)
        item.update(label=det.label, confidence=1.0, **_attributes(det))
        items.append(item)
    return json.dumps(items, ensure_ascii=False) if items else None


@dataclass(frozen=True)
class ExampleTurn:
    key: str
    images: tuple[Any, ...]  # PreparedImage, as the plan sends its own
    answer: str


def example_turns(plan: PlannedRequest) -> tuple[ExampleTurn, ...]:
    """The plan's examples that have an answer for it, in the plan's order."""
    out = []
    for ex in plan.examples:
        answer = render_answer(plan.kind, ex.answer)
        if answer is not None and len(ex.images) == len(plan.image_names):
            out.append(ExampleTurn(ex.key, tuple(ex.images), answer))
    return tuple(out)


def history_contents(turns: Sequence[ExampleTurn], image_parts: Sequence[types.Part], prompt_text: str) -> list[types.Content]:
    """User turn (images, the prompt) + model turn (the answer) per example; `image_parts` are the
    turns' images in order, as files.py built them (URI or inline)."""
    out: list[types.Content] = []
    i = 0
    for t in turns:
        parts = list(image_parts[i : i + len(t.images)])
        i += len(t.images)
        out.append(types.Content(role="user", parts=build_parts(parts, prompt_text)))
        out.append(types.Content(role="model", parts=[types.Part.from_text(text=t.answer)]))
    return out


# ------------------------------------------------------------------------------------ the component


@dataclass(frozen=True)
class History:
    """The extra contents of one request, what they cost and which file URIs they reference."""

    contents: tuple[types.Content, ...]
    sent: tuple[Any, ...]  # files.SentImage of the example images
    tokens: int  # input tokens the examples add (countTokens)
    examples: int
    inline_bytes: int  # what they add to the request body (inline images, answers)
    tag: str | None  # the example set's digest
    cache: str | None = None  # the context cache holding `contents` and `system` (ctxcache.py), None: inline
    model: str = ""
    system: str | None = None


class FewShotWire:
    """Example contents for plans, images through the FilesManager (its cache and single flight)."""

    def __init__(self, files: Any, settings: Any, metrics: Any, usage: Any = None,
                 caches: ContextCaches | None = None) -> None:
        self.files = files
        self.settings = settings
        self.metrics = metrics
        self.usage = usage  # review/fewshot.UsageStore, or None
        self.caches = caches  # FEW_SHOT_CACHE: the examples in a context cache (ctxcache.py), or None
        self._lock = threading.Lock()
        self._counted: dict[tuple[str, str, str, str], int] = {}
        self._flights: dict[tuple[str, str, str, str], threading.Lock] = {}

    def _count(self, model: str, turn: ExampleTurn, plan: PlannedRequest, prompt: Prompt, contents: list[types.Content],
               deadline: float) -> int | None:
        key = (model, turn.key, plan.kind.value, hashlib.sha256(prompt.user.encode() + turn.answer.encode()).hexdigest())
        with self._lock:
            if key in self._counted:
                return self._counted[key]
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:  # the tasks of a batch start together: one of them counts, the others wait for it
            with self._lock:
                if key in self._counted:
                    return self._counted[key]
            n = self._count_now(model, turn, contents, deadline)
            with self._lock:
                if n is not None:
                    if len(self._counted) >= 4096:  # example sets come and go: never grow without bound
                        self._counted.clear()
                    self._counted[key] = n
                self._flights.pop(key, None)
            return n

    def _count_now(self, model: str, turn: ExampleTurn, contents: list[types.Content], deadline: float) -> int | None:
        left = max(1.0, min(self.settings.request_timeout, deadline - time.monotonic()))
        try:
            n = int(self.files.client.models.count_tokens(
                model=model, contents=contents,
                config=types.CountTokensConfig(http_options=types.HttpOptions(timeout=int(left * 1000))),
            ).total_tokens or 0)
        except Exception as exc:  # an uncounted example could break the budget: leave it out this time
            log.warning("few-shot example %s left out: countTokens failed (%s: %s)", turn.key, type(exc).__name__, str(exc)[:200])
            return None
        return n

    def contents_for(self, plan: PlannedRequest, prompt: Prompt, *, deadline: float, model: str | None = None,
                     cache: bool = True) -> History | None:
        """The examples of `plan` as prior turns, within FEW_SHOT_MAX_TOKENS; None when there are none.
        `cache=False`: never a context cache (an estimate must not create one: it costs money)."""
        turns = example_turns(plan)
        if not turns:
            return None
        target = resolve(model or self.settings.model).name
        images = [im for t in turns for im in t.images]
        # uses=2: an example image serves many requests, so under GEMINI_FILES=auto it goes as a file
        try:
            built = self.files.build(images, {im.sha256: 2 for im in images}, deadline=deadline)
        except Exception as exc:  # e.g. a too-big example image whose upload failed: the task goes without
            log.warning("few-shot examples left out of a %s request: %s: %s", plan.kind.value, type(exc).__name__, str(exc)[:200])
            return None
        contents: list[types.Content] = []
        sent: list[Any] = []
        tokens = kept = extra_bytes = 0
        i = 0
        for t in turns:
            parts, how = built.parts[i : i + len(t.images)], built.sent[i : i + len(t.images)]
            i += len(t.images)
            turn = history_contents([t], parts, prompt.user)
            n = self._count(target, t, plan, prompt, turn, deadline)
            if n is None:
                continue
            if tokens + n > self.settings.few_shot_max_tokens:
                log.info("few-shot example %s left out: %d more input tokens would pass FEW_SHOT_MAX_TOKENS=%d",
                         t.key, n, self.settings.few_shot_max_tokens)
                continue
            tokens += n
            kept += 1
            contents.extend(turn)
            sent.extend(how)
            extra_bytes += len(t.answer.encode()) + len(prompt.user.encode()) + sum(
                (len(im.data) + 2) // 3 * 4 for im, s in zip(t.images, how) if s.ref is None)
        if not kept:
            return None
        tag = example_set_tag(sorted({e.key for e in plan.examples}))
        name = self.caches.reference(target, prompt.system, contents, tokens, tag, deadline) if (
            self.caches is not None and cache) else None
        return History(tuple(contents), tuple(sent), tokens, kept, extra_bytes, tag, name, target, prompt.system)

    def would_cache(self, history: History) -> bool:
        """Whether a job would send `history` through a context cache (FEW_SHOT_CACHE on, the model's
        minimum reached): what an estimate bills at the cached rate."""
        return self.caches is not None and history.tag is not None and history.tokens >= min_cache_tokens(history.model)

    def evict(self, history: History) -> History:
        """Gemini refused `history`'s context cache (expired, deleted): forget it; the history inline."""
        if self.caches is not None and history.cache:
            log.info("few-shot context cache %s refused by Gemini: examples go inline, a new cache next time", history.cache)
            self.caches.evict(history.model, history.system, history.contents, history.tag, history.cache)
        return History(history.contents, history.sent, history.tokens, history.examples, history.inline_bytes, history.tag,
                       None, history.model, history.system)

    def record(self, history: History, prompt_tokens: int, cached_tokens: int = 0) -> None:
        """A request carrying `history` was answered: count what the examples cost (`cached_tokens`: of
        `prompt_tokens`, those Gemini served from the context cache)."""
        self.metrics.few_shot_requests.inc()
        self.metrics.few_shot_tokens.inc(history.tokens)
        if self.usage is not None and history.tag:
            try:
                self.usage.add(history.tag, requests=1, tokens=history.tokens, prompt_tokens=prompt_tokens,
                               cached_tokens=cached_tokens, examples=history.examples)
            except (redis.RedisError, OSError) as exc:  # Redis away: the metric above still has it
                log.debug("few-shot usage not recorded: %s", exc)


__all__ = ["ExampleTurn", "FewShotWire", "History", "box_mask", "example_turns", "history_contents", "render_answer"]
