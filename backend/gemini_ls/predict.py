"""Orchestration: task -> images -> provider requests -> parsed answers -> Label Studio regions.

Nothing here knows Gemini: requests go through a `VisionProvider` (provider.py).

`Predictor` does one task and never raises: every failure becomes a `TaskOutcome` with a reason
word (for metrics) and a message (for the log and Label Studio). A /predict selection of them runs in
selectionrunner.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .detections import ImageMeta, ParsedAnswer, RequestKind
from .dynlabels import DynamicLabelsError, one_per_phrase, resolve_plan
from .dynrefs import REFERENCE_MAX_SIDE, References, with_references
from .images.errors import ImageError
from .images.prepare import PreparedImage, prepare_image
from .labelconfig import ControlSpec, ProjectSpec
from .metrics import Metrics
from .plan import PlannedRequest, images_needed
from .provider import ProviderError, VisionProvider
from .regions import convert_for
from .regions.scores import calibrated, task_score
from .settings import Settings
from .taskquestions import QuestionError, asked, unasked
from .tiling.cut import cut, decode_oriented
from .tiling.grid import Grid, plan_grid
from .tiling.tiled import merge_answers, tile_frames

log = logging.getLogger("gemini_ls.predict")

Fetch = Callable[[str, Any], bytes]  # (image reference from task data, task id) -> raw bytes


class TaskFailure(Exception):
    def __init__(self, reason: str, message: str, *, upstream: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.upstream = upstream  # the model provider failed, not the task's input


@dataclass(frozen=True)
class TaskOutcome:
    task_id: Any
    status: str  # ok | empty | failed | late
    result: tuple[dict, ...] | None = None
    score: float | None = None
    error: str | None = None
    reason: str | None = None
    seconds: float = 0.0
    upstream: bool = False  # failed because the model provider did (an HTTP 502 when interactive)
    # what part of a task that still succeeded was not predicted, and why (pages not fetched or
    # over MAX_PAGES, pagepredict.py); logged with the task
    note: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status in ("ok", "empty")

    def to_response(self, model_version: str) -> dict:
        """One entry of /predict's `results`. Failures carry NO `result` key: Label Studio stores nothing."""
        if self.succeeded:
            entry: dict[str, Any] = {"result": list(self.result or ()), "model_version": model_version}
            if self.score is not None:
                entry["score"] = self.score
            return entry
        return {"model_version": model_version, "error": self.error or "prediction failed", "task": self.task_id}


def task_key(task: Mapping[str, Any]) -> str:
    """Identity of a task's input: its id and its data (a changed image URL is a different task)."""
    blob = json.dumps([task.get("id"), task.get("data")], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def image_refs(task: Mapping[str, Any], spec: ProjectSpec, names: Iterable[str]) -> dict[str, str]:
    data = task.get("data")
    if not isinstance(data, Mapping):
        raise TaskFailure("task_data", f"task {task.get('id')} has no 'data' object")
    refs: dict[str, str] = {}
    for name in names:
        key = spec.image(name).value_key
        ref = data.get(key)
        if spec.image(name).value_list:  # pages: pagepredict.py, which this path (Batch API, interactive) is not
            raise TaskFailure("task_data", f"task {task.get('id')}: <Image name={name!r} valueList> is a multi-page "
                              "document, predicted by /predict and jobs only (not the Batch API nor interactive pre-annotation)")
        if not isinstance(ref, str) or not ref.strip():
            raise TaskFailure(
                "task_data",
                f"task {task.get('id')} has no image at data[{key!r}] (needed by <Image name={name!r}>)",
            )
        refs[name] = ref.strip()
    return refs


class Predictor:
    def __init__(self, settings: Settings, metrics: Metrics, provider: VisionProvider) -> None:
        self.settings = settings
        self.metrics = metrics
        self.provider = provider

    @staticmethod
    def unasked(plans: Sequence[PlannedRequest], task: Mapping[str, Any]) -> frozenset[int]:
        """Indexes of the plans asking a question `task` does not have: not sent (taskquestions.py)."""
        return unasked(plans, task)

    @staticmethod
    def as_sent(plan: PlannedRequest, task: Mapping[str, Any]) -> PlannedRequest:
        """`plan` as sent for `task`: without the task's own few-shot example, with the task's
        question (taskquestions.py); TaskFailure when that question cannot be asked."""
        try:
            return asked(plan.for_task(task.get("id")), task)
        except QuestionError as exc:
            raise TaskFailure("task_question", f"task {task.get('id')}: {exc}") from exc

    # -- one provider request -> parsed answer -----------------------------------------------
    def _ask(
        self, plan: PlannedRequest, images: list[PreparedImage], uses: Mapping[str, int], deadline: float, task_id: Any
    ) -> ParsedAnswer:
        try:
            answer = self.provider.answer(plan, images, uses=uses, deadline=deadline)
        except ProviderError as exc:
            raise TaskFailure(exc.reason, exc.message, upstream=True) from exc
        return self.counted(answer, task_id)

    @staticmethod
    def grid_for(plan: PlannedRequest, sizes: Sequence[tuple[int, int]]) -> Grid | None:
        """The tiles a spatial plan's image (of `sizes`: (width, height) as Label Studio shows it) is
        cut into (TILING / model_tiling, tiling/grid.py), None when it goes whole: tiling off, not
        spatial, or `auto` finding the image small enough. Synchronous and Batch API paths alike."""
        if plan.tiling == "off" or not plan.kind.spatial or len(sizes) != 1:
            return None
        grid = plan_grid(sizes[0][0], sizes[0][1], plan.tiling, plan.media_resolution)
        return None if grid.whole else grid

    def _ask_tiles(self, plan: PlannedRequest, image: PreparedImage, raw: bytes, grid: Grid, uses: Mapping[str, int],
                   deadline: float, task_id: Any) -> ParsedAnswer:
        """One request per tile, cut from the full-resolution image, merged back (tiling/tiled.py).
        A tile is used as often as its image (the Files API policy sees the same `uses`)."""
        n_uses = max(1, uses.get(image.sha256, 1))
        answers = []
        for index, tile in enumerate(self.tiles(image, raw, grid)):
            if time.monotonic() >= deadline:
                raise TaskFailure("timeout", f"the task ran out of time at tile {index + 1} of {len(grid.tiles)}")
            answers.append(self._ask(plan, [tile], {tile.sha256: n_uses}, deadline, task_id))
        return merge_answers(answers, grid, text=plan.text_unit is not None)

    def tiles(self, image: PreparedImage, raw: bytes, grid: Grid) -> list[PreparedImage]:
        """`grid`'s tiles of `image`, cut from its downloaded bytes at full resolution, as sent
        (IMAGE_MAX_SIDE), each keyed by the image's hash and its rectangle (the Files API cache key)."""
        try:
            pixels = decode_oriented(raw)
        except Exception as exc:  # PIL raises many types; the bytes decoded once already, so a bad file
            raise TaskFailure("image_corrupt", f"image {image.name!r}: could not cut it into tiles ({type(exc).__name__})") from exc
        self.metrics.tiles.inc(len(grid.tiles))
        return [cut(pixels, frame, name=image.name, max_side=self.settings.image_max_side, source=image.sha256)
                for frame in tile_frames(grid)]

    def counted(self, answer: ParsedAnswer, task_id: Any) -> ParsedAnswer:
        """The answer, its dropped items counted and a truncation logged (also for Batch API answers)."""
        for reason, count in answer.dropped.items():
            if reason == "bad_mask":
                self.metrics.masks_dropped.inc(count)
            else:
                self.metrics.items_dropped.labels(reason).inc(count)
        if answer.truncated:
            log.warning("task %s: the model's answer was truncated (%s); kept the complete items", task_id, answer.finish_reason)
        return answer

    def answer_regions(self, plan: PlannedRequest, metas: Mapping[str, ImageMeta], answer: ParsedAnswer) -> list[dict]:
        """The Label Studio regions of every control a planned request serves."""
        results: list[dict] = []
        for control in plan.controls:
            results.extend(self._regions(plan, control, metas, answer))
        return results

    def _regions(self, plan: PlannedRequest, control: ControlSpec, metas: Mapping[str, ImageMeta], answer: ParsedAnswer) -> list[dict]:
        if plan.kind.per_task:
            conversion = convert_for(control, metas, answer)
        else:
            # Spatial plans cover one image (the provider reports every detection as image 0 of
            # the request); the converter matches detections to the control's image by its
            # position in the control's toName list.
            image_name = plan.image_names[0]
            index = control.to_names.index(image_name)
            if any(d.image_index != index for d in answer.detections):
                answer = replace(answer, detections=tuple(replace(d, image_index=index) for d in answer.detections))
            conversion = convert_for(control, {image_name: metas[image_name]}, answer)
        for reason, count in conversion.dropped.items():
            self.metrics.items_dropped.labels(reason).inc(count)
        return list(conversion.results)

    def _validate(self, spec: ProjectSpec, results: list[dict], task_id: Any) -> list[dict]:
        """Each region checked by Label Studio's own validator, as one: the results sharing an id (a
        shape, its labels, its per-region answers) are validated together (a `labels` result is only
        valid beside its shape) and dropped together."""
        if spec.interface is None:
            return results
        regions: dict[Any, list[dict]] = {}
        for result in results:
            regions.setdefault(result.get("id"), []).append(result)
        rejected = set()
        for rid, region in regions.items():
            errors = spec.interface.validate_prediction({"result": region}, return_errors=True)
            if errors:
                rejected.add(rid)
                self.metrics.items_dropped.labels("invalid_region").inc()
                log.error("task %s: dropped a region Label Studio would reject: %s", task_id, errors)
        return [r for r in results if r.get("id") not in rejected]

    def prepare_images(
        self, task: Mapping[str, Any], spec: ProjectSpec, plans: Sequence[PlannedRequest], fetch: Fetch
    ) -> tuple[dict[str, str], dict[str, PreparedImage]]:
        """(image refs, prepared images by <Image> name) of what the plans send; TaskFailure if one cannot be had."""
        refs, prepared, _raw = self.prepare_images_and_bytes(task, spec, plans, fetch)
        return refs, prepared

    def prepare_images_and_bytes(
        self, task: Mapping[str, Any], spec: ProjectSpec, plans: Sequence[PlannedRequest], fetch: Fetch
    ) -> tuple[dict[str, str], dict[str, PreparedImage], dict[str, bytes]]:
        """prepare_images, and the downloaded bytes by <Image> name (tiles are cut from them)."""
        task_id = task.get("id")
        refs = image_refs(task, spec, images_needed(plans))
        prepared: dict[str, PreparedImage] = {}
        raws: dict[str, bytes] = {}
        for name, ref in refs.items():
            prepared[name], raws[name] = self.prepare_one(name, ref, task_id, fetch)
        return refs, prepared, raws

    def prepare_one(self, name: str, ref: str, task_id: Any, fetch: Fetch) -> tuple[PreparedImage, bytes]:
        """One image fetched and prepared as sent, with its downloaded bytes; TaskFailure if it cannot be had."""
        try:
            raw = fetch(ref, task_id)  # the fetcher counts its own failures
        except ImageError as exc:
            raise TaskFailure(f"image_{exc.reason}", f"image {name!r}: {exc}") from exc
        try:
            prepared = prepare_image(
                raw, name=name, max_side=self.settings.image_max_side, max_pixels=self.settings.image_max_pixels,
                decode_pixels=self.settings.image_decode_budget,
            )
        except ImageError as exc:
            self.metrics.image_fetch_errors.labels(exc.reason).inc()
            raise TaskFailure(f"image_{exc.reason}", f"image {name!r}: {exc}") from exc
        return prepared, raw

    def references(self, plan: PlannedRequest, fetch: Fetch, task_id: Any, deadline: float) -> References:
        """The reference pictures of `plan`'s labels from the task (dynrefs.py), through the task's fetcher;
        none is fetched past half the time left (the request itself needs the rest)."""
        cutoff = time.monotonic() + (deadline - time.monotonic()) / 2

        def prepare(url: str) -> PreparedImage:
            if time.monotonic() >= cutoff:
                raise ImageError("timeout", "no time left in the task to download it")
            raw = fetch(url, task_id)
            return prepare_image(raw, name=f"reference {url[:80]}", max_side=REFERENCE_MAX_SIDE,
                                 max_pixels=self.settings.image_max_pixels, decode_pixels=self.settings.image_decode_budget)
        return with_references(plan, prepare, task_id)

    def finish(self, spec: ProjectSpec, task_id: Any, results: list[dict], started: float) -> TaskOutcome:
        """A task's outcome from all its regions: validated, counted, scored (calibrated where the
        review loop learned a calibration, regions/scores.py)."""
        results = calibrated(spec, self._validate(spec, results, task_id))
        for region in results:
            self.metrics.regions.labels(region.get("type", "?")).inc()
        return TaskOutcome(
            task_id=task_id,
            status="ok" if results else "empty",
            result=tuple(results),
            score=task_score(results),
            seconds=time.monotonic() - started,
        )

    def predict_task(
        self,
        task: Mapping[str, Any],
        spec: ProjectSpec,
        plans: Sequence[PlannedRequest],
        fetch: Fetch,
        *,
        deadline: float,
        uses_by_ref: Mapping[str, int] | None = None,
    ) -> TaskOutcome:
        started = time.monotonic()
        return self.guarded(task.get("id"), started, lambda: self._predict_one(task, spec, plans, fetch, deadline, uses_by_ref, started))

    def guarded(self, task_id: Any, started: float, run: Callable[[], TaskOutcome]) -> TaskOutcome:
        """`run`'s outcome; whatever goes wrong costs this task only (a bug too, logged), never the selection."""
        try:
            return run()
        except TaskFailure as exc:
            return TaskOutcome(
                task_id, "failed", error=exc.message, reason=exc.reason, seconds=time.monotonic() - started, upstream=exc.upstream
            )
        except DynamicLabelsError as exc:
            return TaskOutcome(task_id, "failed", error=f"task {task_id}: {exc}", reason="task_labels",
                               seconds=time.monotonic() - started)
        except Exception as exc:  # a bug must cost one task, never the selection or the process
            log.exception("task %s: unexpected error", task_id)
            return TaskOutcome(
                task_id, "failed", error=f"internal error: {type(exc).__name__}: {exc}", reason="internal",
                seconds=time.monotonic() - started,
            )

    def _predict_one(self, task: Mapping[str, Any], spec: ProjectSpec, plans: Sequence[PlannedRequest], fetch: Fetch,
                     deadline: float, uses_by_ref: Mapping[str, int] | None, started: float) -> TaskOutcome:
        task_id = task.get("id")
        # a question the task does not have is not asked; a bad one fails the task before any call
        skip = unasked(plans, task)
        plans = [self.as_sent(plan, task) for index, plan in enumerate(plans) if index not in skip]
        refs, prepared, raws = self.prepare_images_and_bytes(task, spec, plans, fetch)
        metas = {n: ImageMeta(n, p.width, p.height) for n, p in prepared.items()}
        results: list[dict] = []
        for plan in plans:
            if time.monotonic() >= deadline:
                raise TaskFailure("timeout", "the task ran out of time before all its Gemini requests were made")
            plan = resolve_plan(plan.for_task(task_id), task.get("data"), self.settings.max_dynamic_labels)
            if not plan.labels and plan.kind not in (RequestKind.TEXT, RequestKind.NUMBER):
                continue  # labels from the task, and this task has none: nothing to look for
            references = self.references(plan, fetch, task_id, deadline)
            plan = references.plan
            images = [prepared[n] for n in plan.image_names]
            uses = {
                prepared[n].sha256: max(1, (uses_by_ref or {}).get(refs[n], 1)) for n in plan.image_names
            }
            grid = self.grid_for(plan, [(im.width, im.height) for im in images]) if not references.images else None
            if grid is None:
                answer = self._ask(plan, images + list(references.images), {**uses, **references.uses}, deadline, task_id)
            else:
                answer = self._ask_tiles(plan, images[0], raws[plan.image_names[0]], grid, uses, deadline, task_id)
            if plan.phrases:
                answer = replace(answer, detections=one_per_phrase(answer.detections))
            results.extend(self.answer_regions(plan, metas, answer))
        return self.finish(spec, task_id, results, started)
