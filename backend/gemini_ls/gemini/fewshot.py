"""Few-shot on the wire: reviewed annotations as prior conversation turns of a Gemini request.

Each example is one user turn (its image(s), then the same prompt text the task gets) followed by
one model turn: the annotator's regions rendered in exactly the JSON the prompt asks for (box_2d
as [ymin, xmin, ymax, xmax] in 0-1000, masks as a PNG of the box, points as [y, x], choices as a
list of names), so the model sees worked answers in its own output format. Gemini's documented way
to give examples is such a multi-turn `contents`; the task's own turn comes last.

- `render_answer` / `example_turns` / `history_contents` are pure.
- `FewShotWire.contents_for(plan, prompt, ...)` is the one function that gives the extra contents of
  a plan: example images go through the Files API cache (files.py: uploaded once, referenced by URI
  by every later task), and the examples are kept within FEW_SHOT_MAX_TOKENS input tokens, counted
  exactly once per example, prompt and model by countTokens (cached). An example that cannot be
  counted or does not fit is left out with a log line; nothing here fails a task.
- What the examples cost (their input tokens per request) goes to /metrics and to a usage record
  per example set (Redis when configured), which `gemini-ls report` shows.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from google.genai import types
from PIL import Image, ImageDraw

from ..detections import RequestKind
from ..plan import PlanExample, PlannedRequest
from .models import resolve
from .prompts import Prompt
from .wire import build_parts

log = logging.getLogger(__name__)

MASK_SIDE = 64  # an example mask's longest side in pixels: its base64 PNG stays a few hundred characters
SPATIAL_TYPES = ("rectanglelabels", "polygonlabels", "brushlabels", "rectangle", "polygon", "brush")


# ------------------------------------------------------------------------------------ pure rendering


def _label_of(value: Mapping[str, Any]) -> str | None:
    for key in ("rectanglelabels", "polygonlabels", "brushlabels", "keypointlabels", "labels"):
        labels = value.get(key)
        if isinstance(labels, list) and labels and isinstance(labels[0], str):
            return labels[0]
    return None


def _brush_mask(region: Mapping[str, Any]) -> np.ndarray | None:
    from ..review.match import decode_brush

    w, h = region.get("original_width"), region.get("original_height")
    if not isinstance(w, int) or not isinstance(h, int) or w <= 0 or h <= 0:
        return None
    return decode_brush(region["value"], w, h)


def region_box(region: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """A spatial region's axis-aligned box in percent (x0, y0, x1, y1); None when it has none."""
    value = region.get("value")
    kind = str(region.get("type", "")).lower()
    if not isinstance(value, Mapping):
        return None
    if kind.startswith("rectangle"):
        x, y, w, h = (float(value.get(k, 0.0) or 0.0) for k in ("x", "y", "width", "height"))
        a = math.radians(float(value.get("rotation", 0.0) or 0.0))
        c, s = math.cos(a), math.sin(a)  # Label Studio rotates about (x, y)
        pts = [(x + px * c - py * s, y + px * s + py * c) for px, py in ((0, 0), (w, 0), (w, h), (0, h))]
    elif kind.startswith("polygon"):
        pts = [(float(p[0]), float(p[1])) for p in value.get("points") or () if isinstance(p, (list, tuple)) and len(p) >= 2]
    elif kind.startswith("brush"):
        mask = _brush_mask(region)
        if mask is None or not mask.any():
            return None
        ys, xs = np.nonzero(mask)
        hh, ww = mask.shape
        return (100 * xs.min() / ww, 100 * ys.min() / hh, 100 * (xs.max() + 1) / ww, 100 * (ys.max() + 1) / hh)
    else:
        return None
    if len(pts) < 2:
        return None
    xs_, ys_ = [p[0] for p in pts], [p[1] for p in pts]
    box = (max(0.0, min(xs_)), max(0.0, min(ys_)), min(100.0, max(xs_)), min(100.0, max(ys_)))
    return box if box[2] > box[0] and box[3] > box[1] else None


def _box_2d(box: tuple[float, float, float, float]) -> list[int]:
    x0, y0, x1, y1 = box
    return [int(round(min(1000.0, max(0.0, v * 10)))) for v in (y0, x0, y1, x1)]


def _png(mask: np.ndarray) -> str:
    im = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    scale = MASK_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def box_mask(region: Mapping[str, Any], box: tuple[float, float, float, float]) -> str:
    """The region's mask inside its box as the PNG Gemini answers with (a rectangle fills its box)."""
    kind = str(region.get("type", "")).lower()
    x0, y0, x1, y1 = box
    value = region["value"]
    if kind.startswith("brush"):
        mask = _brush_mask(region)
        if mask is not None:
            hh, ww = mask.shape
            crop = mask[int(y0 / 100 * hh) : max(int(y0 / 100 * hh) + 1, math.ceil(y1 / 100 * hh)),
                        int(x0 / 100 * ww) : max(int(x0 / 100 * ww) + 1, math.ceil(x1 / 100 * ww))]
            return _png(crop)
    if kind.startswith("polygon"):
        side = MASK_SIDE
        bw, bh = max(1e-6, x1 - x0), max(1e-6, y1 - y0)
        w, h = (side, max(1, round(side * bh / bw))) if bw >= bh else (max(1, round(side * bw / bh)), side)
        im = Image.new("L", (w, h), 0)
        pts = [((float(p[0]) - x0) / bw * w, (float(p[1]) - y0) / bh * h) for p in value.get("points") or ()]
        if len(pts) >= 3:
            ImageDraw.Draw(im).polygon(pts, fill=255)
        return _png(np.asarray(im) > 0)
    return _png(np.ones((8, 8), bool))


def _plan_regions(plan: PlannedRequest, regions: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    controls = {c.name for c in plan.controls}
    return [r for r in regions if isinstance(r, Mapping) and r.get("from_name") in controls
            and (plan.kind.per_task or r.get("to_name") == plan.image_names[0]) and isinstance(r.get("value"), Mapping)]


def render_answer(plan: PlannedRequest, regions: Sequence[Mapping[str, Any]]) -> str | None:
    """The annotator's regions of `plan`'s controls as the JSON answer its prompt asks for; None
    when the plan's kind takes no examples (captions) or nothing of it was annotated."""
    labels = {label.value for label in plan.labels}
    mine = _plan_regions(plan, regions)
    items: list[Any] = []
    if plan.kind is RequestKind.CHOICE:
        for r in mine:
            items.extend(c for c in r["value"].get("choices") or () if c in labels and c not in items)
        return json.dumps(items, ensure_ascii=False) if items else None
    if plan.kind is RequestKind.TEXT:
        return None
    for r in mine:
        label = _label_of(r["value"])
        if label not in labels:
            continue
        if plan.kind is RequestKind.POINTS:
            if not str(r.get("type", "")).lower().startswith("keypoint"):
                continue
            x, y = float(r["value"].get("x", 0.0)), float(r["value"].get("y", 0.0))
            items.append({"point": [int(round(y * 10)), int(round(x * 10))], "label": label, "confidence": 1.0})
        else:
            box = region_box(r)
            if box is None:
                continue
            item: dict[str, Any] = {"box_2d": _box_2d(box)}
            if plan.kind is RequestKind.MASKS:
                item["mask"] = box_mask(r, box)
            item.update(label=label, confidence=1.0)
            items.append(item)
        if len(items) >= plan.max_objects:  # never show an answer longer than the task may give
            break
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
        answer = render_answer(plan, ex.regions)
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


def set_tag(keys: Sequence[str]) -> str:
    """The example set's digest ("e" + 8 hex): part of model_version, and the usage record's key."""
    return "e" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:8]


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


class FewShotWire:
    """Example contents for plans, images through the FilesManager (its cache and single flight)."""

    def __init__(self, files: Any, settings: Any, metrics: Any, usage: Any = None) -> None:
        self.files = files
        self.settings = settings
        self.metrics = metrics
        self.usage = usage  # review/fewshot.UsageStore, or None
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

    def contents_for(self, plan: PlannedRequest, prompt: Prompt, *, deadline: float, model: str | None = None) -> History | None:
        """The examples of `plan` as prior turns, within FEW_SHOT_MAX_TOKENS; None when there are none."""
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
        tag = set_tag(sorted({e.key for e in plan.examples}))
        return History(tuple(contents), tuple(sent), tokens, kept, extra_bytes, tag)

    def record(self, history: History, prompt_tokens: int) -> None:
        """A request carrying `history` was answered: count what the examples cost."""
        self.metrics.few_shot_requests.inc()
        self.metrics.few_shot_tokens.inc(history.tokens)
        if self.usage is not None and history.tag:
            try:
                self.usage.add(history.tag, requests=1, tokens=history.tokens, prompt_tokens=prompt_tokens, examples=history.examples)
            except (redis.RedisError, OSError) as exc:  # Redis away: the metric above still has it
                log.debug("few-shot usage not recorded: %s", exc)


def plan_example_key(annotation_id: int, regions: Sequence[Mapping[str, Any]]) -> str:
    """An example's stable name: its annotation and a digest of its regions (an edit is a new example)."""
    blob = json.dumps(list(regions), sort_keys=True, default=str).encode()
    return f"a{annotation_id}.{hashlib.sha256(blob).hexdigest()[:8]}"


__all__ = ["ExampleTurn", "FewShotWire", "History", "PlanExample", "example_turns", "history_contents",
           "plan_example_key", "region_box", "render_answer", "set_tag"]
