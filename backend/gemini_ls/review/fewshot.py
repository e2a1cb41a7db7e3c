"""Few-shot learning from the review loop: up to K reviewed annotations as worked examples.

Which examples (FEW_SHOT_EXAMPLES=K, 0 = off): annotations of the project whose review shows that
our predictions were kept (at least one region accepted or adjusted), so the annotator really went
through the image; the annotation's regions are the corrected answer. `rank` orders them greedily
so that the first K together cover as many of the project's labels as possible (each next one
adds the most labels not yet shown), then by the share of our regions the annotator kept, then
newest first. The candidates come from the review ledger (webhooks) or, for `gemini-ls evaluate`,
straight from Label Studio's tasks; either way each chosen one is read back from Label Studio
(the annotation's regions, the task's data).

The chosen set is learned state: its digest ("e" + 8 hex over the examples' keys, each key naming
an annotation and a digest of its regions) is part of model_version (review/learning.py
LearnedState.tag), so an edited or replaced example is a new version in Label Studio.

`FewShotBook.attach` puts a set's examples on the plans of a batch (only boxes, masks, points and
choices requests; captions take none), fetching each example image once per process with the
backend's image fetcher; an image that cannot be fetched is logged once and that example is left
out, never failing a task. Each attached example carries its answer for the plan, typed
(`example_answer`: regions/ reads the annotation's results back into detections and choices); how
a typed answer looks on the wire is the provider's business (gemini/fewshot.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..detections import ParsedAnswer, RequestKind
from ..images.errors import ImageError
from ..images.prepare import PreparedImage, prepare_image
from ..labelconfig import ProjectSpec
from ..plan import PlanExample, PlannedRequest, example_set_tag
from ..regions import answer_from_results
from .stats import Tally

log = logging.getLogger("gemini_ls.review")

KINDS = (RequestKind.BOXES, RequestKind.MASKS, RequestKind.POINTS, RequestKind.CHOICE)
_TAG = re.compile(r"-(e[0-9a-f]{8})(?:-|$)")


def plan_example_key(annotation_id: int, regions: Sequence[Mapping[str, Any]]) -> str:
    """An example's stable name: its annotation and a digest of its regions (an edit is a new example)."""
    blob = json.dumps(list(regions), sort_keys=True, default=str).encode()
    return f"a{annotation_id}.{hashlib.sha256(blob).hexdigest()[:8]}"


@dataclass(frozen=True)
class Candidate:
    annotation_id: int
    task_id: int
    labels: frozenset[str]  # labels of the annotation's regions
    kept: int  # our predicted regions the annotator accepted or adjusted
    predicted: int  # our predicted regions on the task


@dataclass(frozen=True)
class Example:
    """A chosen example, read back from Label Studio."""

    annotation_id: int
    task_id: int
    data: Mapping[str, Any]  # the task's data (image URLs)
    regions: tuple[Mapping[str, Any], ...]  # the annotation's result

    @property
    def key(self) -> str:
        return plan_example_key(self.annotation_id, self.regions)


def candidate(annotation_id: int, task_id: int, t: Tally) -> Candidate | None:
    """An annotation's review tally as a candidate; None when nothing of ours was kept."""
    labels = frozenset(
        label for label, s in t.labels.items() if s.accepted + s.adjusted + s.relabelled_in + s.missed > 0
    )
    total = t.total()
    if total.accepted + total.adjusted < 1:
        return None
    return Candidate(annotation_id, task_id, labels, total.accepted + total.adjusted, total.predicted)


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Greedy label cover first, then kept share, then newest (see the module docstring). Pure and
    deterministic: the same history gives the same order in every process."""
    left = sorted(candidates, key=lambda c: -c.annotation_id)
    covered: set[str] = set()
    out: list[Candidate] = []
    while left:
        best = max(left, key=lambda c: (len(c.labels - covered), c.kept / max(1, c.predicted), c.kept, c.annotation_id))
        out.append(best)
        covered |= best.labels
        left.remove(best)
    return out


def tag_of_version(model_version: str) -> str | None:
    m = _TAG.search(model_version)
    return m.group(1) if m else None


def examples_tag(examples: Sequence[Example]) -> str | None:
    return example_set_tag(sorted(e.key for e in examples)) if examples else None


def example_answer(plan: PlannedRequest, results: Sequence[Mapping[str, Any]]) -> ParsedAnswer:
    """What `plan`'s request should answer for an example annotation: its results for the plan's
    controls read back (regions.answer_from_results), only the plan's labels, without repeats for
    choices; for detection requests only detections the kind can show (a point for pointing, a box
    otherwise), at most plan.max_objects (an example never answers longer than the task may)."""
    raw = answer_from_results(results, plan.controls, plan.image_names)
    labels = {label.value for label in plan.labels}
    if plan.kind is RequestKind.CHOICE:
        return ParsedAnswer(choices=tuple(dict.fromkeys(c for c in raw.choices if c in labels)))
    if plan.kind is RequestKind.TEXT:
        return ParsedAnswer(text=raw.text)
    points = plan.kind is RequestKind.POINTS
    kept = [d for d in raw.detections if d.label in labels and (d.point if points else d.box) is not None]
    return ParsedAnswer(detections=tuple(kept[: plan.max_objects]))


def examples_from_tasks(tasks: Iterable[Mapping[str, Any]]) -> list[Example]:
    """Every usable example of Label Studio tasks (with annotations and predictions, as plain
    dicts), best first (`rank`): for `gemini-ls evaluate`, which has no ledger."""
    from .match import match_regions
    from .stats import tally
    from .webhook import our_prediction

    found: dict[int, tuple[Candidate, Example]] = {}
    for task in tasks:
        predictions = list(task.get("predictions") or ())
        for annotation in task.get("annotations") or ():
            if annotation.get("was_cancelled") or not annotation.get("result"):
                continue
            pred = our_prediction(predictions, annotation.get("parent_prediction"))
            if pred is None:
                continue
            c = candidate(int(annotation["id"]), int(task["id"]), tally(match_regions(pred.get("result") or [], annotation["result"])))
            if c is not None:
                found[c.annotation_id] = (c, Example(c.annotation_id, c.task_id, dict(task.get("data") or {}),
                                                     tuple(annotation["result"])))
    return [found[c.annotation_id][1] for c in rank(c for c, _ in found.values())]


class ReadFailed(Exception):
    pass


class ExampleSource:
    """Reads the chosen candidates back from Label Studio (annotation result, task data), caching
    each annotation until its review changes; one that cannot be read is skipped (logged)."""

    def __init__(self, get: Callable[[str], Any]) -> None:
        self._get = get  # LabelStudioApi.get_json: path -> JSON
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, Any], Example | None] = {}

    def read(self, c: Candidate, version: Any = None) -> Example | None:
        """The candidate as an Example; None when it is no usable example; ReadFailed when Label
        Studio could not be asked (the caller keeps its last set rather than flap model_version)."""
        key = (c.annotation_id, version)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            annotation = self._get(f"/api/annotations/{int(c.annotation_id)}")
            task = self._get(f"/api/tasks/{int(c.task_id)}")
        except Exception as exc:  # Label Studio away, or the annotation deleted since
            log.warning("few-shot: annotation %s of task %s cannot be read from Label Studio: %s", c.annotation_id, c.task_id, exc)
            raise ReadFailed(str(exc)) from exc
        result = annotation.get("result") if isinstance(annotation, Mapping) else None
        data = task.get("data") if isinstance(task, Mapping) else None
        ex = None
        if isinstance(result, list) and result and isinstance(data, Mapping) and not annotation.get("was_cancelled"):
            ex = Example(c.annotation_id, c.task_id, dict(data), tuple(r for r in result if isinstance(r, Mapping)))
        with self._lock:
            self._cache[key] = ex
        return ex

    def choose(self, ranked: Sequence[Candidate], k: int, versions: Mapping[int, Any] | None = None
               ) -> tuple[tuple[Example, ...], bool]:
        """The first k usable examples of `ranked`, and whether every read succeeded (a candidate
        Label Studio could not give is passed over for the next one)."""
        out: list[Example] = []
        complete = True
        for c in ranked:
            if len(out) >= k:
                break
            try:
                ex = self.read(c, (versions or {}).get(c.annotation_id))
            except ReadFailed:
                complete = False
                continue
            if ex is not None:
                out.append(ex)
        return tuple(out), complete


class FewShotBook:
    """Example sets by digest, and their images, for attaching to the plans of a batch."""

    def __init__(self, settings: Any, fetch: Callable[[str, Any], bytes], max_sets: int = 32) -> None:
        self.settings = settings
        self._fetch = fetch  # (image reference, task id) -> bytes: the backend's fetcher
        self._lock = threading.Lock()
        self._sets: dict[str, tuple[Example, ...]] = {}
        self._max_sets = max_sets
        self._images: dict[tuple[int, str], PreparedImage | None] = {}
        self._answers: dict[tuple, ParsedAnswer] = {}  # (example, what of the plan shapes its answer)

    def remember(self, examples: Sequence[Example]) -> str | None:
        tag = examples_tag(examples)
        if tag is not None:
            with self._lock:
                self._sets.pop(tag, None)
                self._sets[tag] = tuple(examples)
                while len(self._sets) > self._max_sets:
                    self._sets.pop(next(iter(self._sets)))
        return tag

    def examples(self, model_version: str) -> tuple[Example, ...]:
        tag = tag_of_version(model_version)
        with self._lock:
            return self._sets.get(tag, ()) if tag else ()

    def _image(self, ex: Example, ref: str, name: str) -> PreparedImage | None:
        key = (ex.annotation_id, ref)
        with self._lock:
            if key in self._images:
                return self._images[key]
        try:
            raw = self._fetch(ref, ex.task_id)
            image: PreparedImage | None = prepare_image(
                raw, name=name, max_side=self.settings.image_max_side, max_pixels=self.settings.image_max_pixels,
                decode_pixels=self.settings.image_decode_budget,
            )
        except ImageError as exc:
            log.warning("few-shot: example image of task %s (annotation %s) left out: %s", ex.task_id, ex.annotation_id, exc)
            image = None
        with self._lock:
            self._images[key] = image
            while len(self._images) > 4 * self._max_sets:
                self._images.pop(next(iter(self._images)))
        return image

    def _answer(self, ex: Example, plan: PlannedRequest, regions: Sequence[Mapping[str, Any]]) -> ParsedAnswer:
        """`example_answer`, once per example and plan shape: a brush example is decoded once, not per batch."""
        key = (ex.key, plan.kind, plan.image_names, tuple(c.name for c in plan.controls),
               tuple(label.value for label in plan.labels), plan.max_objects)
        with self._lock:
            if key in self._answers:
                return self._answers[key]
        answer = example_answer(plan, regions)
        with self._lock:
            self._answers[key] = answer
            while len(self._answers) > 16 * self._max_sets:
                self._answers.pop(next(iter(self._answers)))
        return answer

    def attach(self, plans: Sequence[PlannedRequest], spec: ProjectSpec, model_version: str) -> tuple[PlannedRequest, ...]:
        """`plans` with the examples of `model_version`'s example set (unchanged when it has none)."""
        examples = self.examples(model_version)
        if not examples:
            return tuple(plans)
        out = []
        for plan in plans:
            if plan.kind not in KINDS:
                out.append(plan)
                continue
            controls = {c.name for c in plan.controls}
            attached: list[PlanExample] = []
            for ex in examples:
                regions = tuple(r for r in ex.regions if r.get("from_name") in controls)
                if not regions:
                    continue
                images: list[PreparedImage] = []
                for name in plan.image_names:
                    ref = ex.data.get(spec.image(name).value_key)
                    image = self._image(ex, ref.strip(), name) if isinstance(ref, str) and ref.strip() else None
                    if image is None:
                        break
                    images.append(image)
                else:
                    attached.append(PlanExample(ex.key, tuple(images), self._answer(ex, plan, regions), ex.task_id))
            out.append(replace(plan, examples=tuple(attached)) if attached else plan)
        return tuple(out)


# ----- what the examples cost, per example set (shown by `gemini-ls report`) ----------------------

USAGE_FIELDS = ("requests", "tokens", "prompt_tokens", "cached_tokens", "examples")


class MemoryUsage:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._d: dict[str, dict[str, int]] = {}

    def add(self, tag: str, **counts: int) -> None:
        with self._lock:
            d = self._d.setdefault(tag, dict.fromkeys(USAGE_FIELDS, 0))
            for k, v in counts.items():
                d[k] = max(d[k], v) if k == "examples" else d[k] + v

    def get(self, tag: str) -> dict[str, int] | None:
        with self._lock:
            return dict(self._d[tag]) if tag in self._d else None


class RedisUsage:
    """`{prefix}review:fewshot:<tag>`: a hash of USAGE_FIELDS, shared by every worker."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._r = client
        self._p = f"{prefix}review:fewshot:"

    def add(self, tag: str, **counts: int) -> None:
        pipe = self._r.pipeline()
        for k, v in counts.items():
            if k != "examples":
                pipe.hincrby(self._p + tag, k, int(v))
        pipe.hset(self._p + tag, "examples", int(counts.get("examples", 0)))
        pipe.execute()

    def get(self, tag: str) -> dict[str, int] | None:
        raw = self._r.hgetall(self._p + tag)
        if not raw:
            return None
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


def make_usage(redis_url: str | None, prefix: str, profile: Any = None) -> MemoryUsage | RedisUsage:
    """`profile` (redisconn.py): `request` unless told otherwise (a CLI passes `job`)."""
    if not redis_url:
        return MemoryUsage()
    from .. import redisconn

    return RedisUsage(redisconn.client(redis_url, profile or redisconn.REQUEST), prefix)


def describe_usage(tag: str, usage: Mapping[str, int] | None) -> str:
    """One line for the report: what the version's examples cost per request."""
    if not usage or not usage.get("requests"):
        return f"few-shot {tag}: no usage recorded (recorded per example set in Redis: needs REDIS_URL)"
    n = usage["requests"]
    extra, total = usage.get("tokens", 0) / n, usage.get("prompt_tokens", 0) / n
    share = f", {100 * extra / total:.0f} % of {total:.0f}" if total else ""
    cached = usage.get("cached_tokens", 0) / n
    if cached:  # gemini/ctxcache.py: billed at the cached rate (gemini/pricing.py)
        share += f", {cached:.0f} of them from the context cache"
    return (f"few-shot {tag}: {usage.get('examples', 0)} examples, +{extra:.0f} input tokens per request{share} "
            f"(over {n} requests; one request per task for a one-control config)")
