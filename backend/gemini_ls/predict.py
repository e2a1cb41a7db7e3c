"""Orchestration: task -> images -> provider requests -> parsed answers -> Label Studio regions.

Nothing here knows Gemini: requests go through a `VisionProvider` (provider.py).

`Predictor` does one task and never raises: every failure becomes a `TaskOutcome` with a reason
word (for metrics) and a message (for the log and Label Studio). `BatchRunner` runs a /predict
batch with bounded concurrency and a deadline: what is not done by then is answered without a
`result` (Label Studio stores nothing, so a later "Retrieve predictions" fills it), keeps running,
and is served from memory when Label Studio asks again, so nothing is computed twice.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

from .detections import ImageMeta, ParsedAnswer
from .images.errors import ImageError
from .images.prepare import PreparedImage, prepare_image
from .labelconfig import ControlSpec, ProjectSpec
from .metrics import Metrics
from .plan import PlannedRequest, images_needed, plan_requests
from .provider import ProviderError, VisionProvider
from .regions import convert_for
from .settings import Settings

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
        if not isinstance(ref, str) or not ref.strip():
            raise TaskFailure(
                "task_data",
                f"task {task.get('id')} has no image at data[{key!r}] (needed by <Image name={name!r}>)",
            )
        refs[name] = ref.strip()
    return refs


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


class Predictor:
    def __init__(self, settings: Settings, metrics: Metrics, provider: VisionProvider) -> None:
        self.settings = settings
        self.metrics = metrics
        self.provider = provider

    # -- one provider request -> parsed answer -----------------------------------------------
    def _ask(
        self, plan: PlannedRequest, images: list[PreparedImage], uses: Mapping[str, int], deadline: float, task_id: Any
    ) -> ParsedAnswer:
        try:
            answer = self.provider.answer(plan, images, uses=uses, deadline=deadline)
        except ProviderError as exc:
            raise TaskFailure(exc.reason, exc.message, upstream=True) from exc
        return self.counted(answer, task_id)

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
        if spec.interface is None:
            return results
        kept = []
        for region in results:
            errors = spec.interface.validate_prediction({"result": [region]}, return_errors=True)
            if errors:
                self.metrics.items_dropped.labels("invalid_region").inc()
                log.error("task %s: dropped a region Label Studio would reject: %s", task_id, errors)
            else:
                kept.append(region)
        return kept

    def prepare_images(
        self, task: Mapping[str, Any], spec: ProjectSpec, plans: Sequence[PlannedRequest], fetch: Fetch
    ) -> tuple[dict[str, str], dict[str, PreparedImage]]:
        """(image refs, prepared images by <Image> name) of what the plans send; TaskFailure if one cannot be had."""
        task_id = task.get("id")
        refs = image_refs(task, spec, images_needed(plans))
        prepared: dict[str, PreparedImage] = {}
        for name, ref in refs.items():
            try:
                raw = fetch(ref, task_id)  # the fetcher counts its own failures
            except ImageError as exc:
                raise TaskFailure(f"image_{exc.reason}", f"image {name!r}: {exc}") from exc
            try:
                prepared[name] = prepare_image(
                    raw, name=name, max_side=self.settings.image_max_side, max_pixels=self.settings.image_max_pixels,
                    decode_pixels=self.settings.image_decode_budget,
                )
            except ImageError as exc:
                self.metrics.image_fetch_errors.labels(exc.reason).inc()
                raise TaskFailure(f"image_{exc.reason}", f"image {name!r}: {exc}") from exc
        return refs, prepared

    def finish(self, spec: ProjectSpec, task_id: Any, results: list[dict], started: float) -> TaskOutcome:
        """A task's outcome from all its regions: validated, counted, scored."""
        results = self._validate(spec, results, task_id)
        for region in results:
            self.metrics.regions.labels(region.get("type", "?")).inc()
        return TaskOutcome(
            task_id=task_id,
            status="ok" if results else "empty",
            result=tuple(results),
            score=_mean(r.get("score") for r in results),
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
        task_id = task.get("id")
        try:
            refs, prepared = self.prepare_images(task, spec, plans, fetch)
            metas = {n: ImageMeta(n, p.width, p.height) for n, p in prepared.items()}
            results: list[dict] = []
            for plan in plans:
                if time.monotonic() >= deadline:
                    raise TaskFailure("timeout", "the task ran out of time before all its Gemini requests were made")
                plan = plan.for_task(task_id)
                images = [prepared[n] for n in plan.image_names]
                uses = {
                    prepared[n].sha256: max(1, (uses_by_ref or {}).get(refs[n], 1)) for n in plan.image_names
                }
                answer = self._ask(plan, images, uses, deadline, task_id)
                results.extend(self.answer_regions(plan, metas, answer))
            return self.finish(spec, task_id, results, started)
        except TaskFailure as exc:
            return TaskOutcome(
                task_id, "failed", error=exc.message, reason=exc.reason, seconds=time.monotonic() - started, upstream=exc.upstream
            )
        except Exception as exc:  # a bug must cost one task, never the batch or the process
            log.exception("task %s: unexpected error", task_id)
            return TaskOutcome(
                task_id, "failed", error=f"internal error: {type(exc).__name__}: {exc}", reason="internal",
                seconds=time.monotonic() - started,
            )


class BatchRunner:
    """Runs batches on one bounded pool shared by every /predict of the process."""

    def __init__(
        self, predictor: Predictor, settings: Settings, metrics: Metrics, *,
        keep_seconds: float = 3600, delivered_seconds: float = 120, keep_max: int = 20000, outcomes: Any = None,
    ) -> None:
        self.predictor = predictor
        self.settings = settings
        self.metrics = metrics
        self.pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="predict")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}
        self._done: OrderedDict[str, tuple[float, TaskOutcome]] = OrderedDict()
        # running tasks whose batch answered without them -> who takes them when done (None: kept
        # here for the next request)
        self._late: dict[str, Callable[[TaskOutcome], None] | None] = {}
        self._keep_seconds = keep_seconds
        self._delivered_seconds = delivered_seconds
        self._keep_max = keep_max
        # finished outcomes shared by every process (jobs/outcomes.py, with REDIS_URL); else self._done
        self.outcomes = outcomes
        self.few_shot: Any = None  # review/fewshot.FewShotBook: the model_version's examples onto the plans

    def _keep(self, key: str, outcome: TaskOutcome, seconds: float) -> None:
        if self.outcomes is not None:
            self.outcomes.put(key, outcome, seconds)
            return
        self._done[key] = (time.monotonic() + seconds, outcome)
        self._done.move_to_end(key)
        while len(self._done) > self._keep_max:
            self._done.popitem(last=False)

    def _finished(self, key: str, fut: Future) -> None:
        """Pool thread, when a task is done: it leaves the in-flight table in the same step in which
        it is kept for a later request (no gap in which a new request would compute it again).

        A task whose batch already answered without it is kept up to `keep_seconds`, until asked
        for; any other only `delivered_seconds`, longer than Label Studio's 100 s wait, so a batch
        Label Studio gave up on (it then stores nothing and asks again) is not computed twice.
        Failures are not kept: they are retried afresh.
        """
        with self._lock:
            if self._inflight.get(key) is fut:
                del self._inflight[key]
            late = key in self._late
            handler = self._late.pop(key, None)
            if fut.cancelled():  # shutdown cancelled it before it ran
                return
            outcome: TaskOutcome = fut.result()
            if handler is None and outcome.succeeded:
                self._keep(key, outcome, self._keep_seconds if late else self._delivered_seconds)
        if handler is not None:  # its batch handed it on (background write-back): not kept for a re-run
            try:
                handler(outcome)
            except Exception:
                log.exception("task %s: the late-task handler failed", outcome.task_id)

    def _cached(self, key: str) -> TaskOutcome | None:
        if self.outcomes is not None:
            return self.outcomes.get(key)
        entry = self._done.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._done[key]
            return None
        return entry[1]

    def run(
        self,
        tasks: Sequence[Mapping[str, Any]],
        spec: ProjectSpec,
        model_version: str,
        fetch: Fetch,
        *,
        deadline: float,
        on_late: Callable[[TaskOutcome], None] | None = None,
        cancel_unstarted: bool = False,
    ) -> list[TaskOutcome]:
        """`on_late`: when given, a task not done by `deadline` is handed to it once finished
        (instead of being kept for the next request). `cancel_unstarted`: a task this call queued
        that has not started by `deadline` is taken off the pool and answered late with reason
        "unstarted" (its caller hands it to a durable job queue, jobs/oneclick.py)."""
        plans = plan_requests(spec, self.settings.routing)
        if self.few_shot is not None:
            plans = self.few_shot.attach(plans, spec, model_version)
        names = images_needed(plans)
        uses_by_ref: dict[str, int] = {}
        for task in tasks:
            try:
                refs = image_refs(task, spec, names)
            except TaskFailure:
                continue
            for plan in plans:
                for name in plan.image_names:
                    uses_by_ref[refs[name]] = uses_by_ref.get(refs[name], 0) + 1

        futures: list[Future] = []
        keys: list[str] = []
        own: set[int] = set()  # ids of the futures this call submitted
        for task in tasks:
            key = f"{model_version}:{task_key(task)}"
            keys.append(key)
            submitted: Future | None = None
            with self._lock:
                cached = self._cached(key)
                if cached is not None:
                    fut: Future = Future()
                    fut.set_result(replace(cached, task_id=task.get("id")))
                elif key in self._inflight:
                    fut = self._inflight[key]
                else:
                    task_budget = self.settings.predict_timeout

                    def job(task=task, budget=task_budget) -> TaskOutcome:
                        # A task's own clock starts when it starts: one that misses the batch's deadline
                        # still finishes and is served from memory on the next request.
                        return self.predictor.predict_task(
                            task, spec, plans, fetch, deadline=time.monotonic() + budget, uses_by_ref=uses_by_ref
                        )

                    fut = submitted = self.pool.submit(job)
                    self._inflight[key] = fut
                    own.add(id(fut))
            if submitted is not None:
                # Outside the lock: a future that is already done runs the callback right here.
                submitted.add_done_callback(functools.partial(self._finished, key))
            futures.append(fut)

        wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        outcomes: list[TaskOutcome] = []
        late_ids: list[Any] = []
        for task, key, fut in zip(tasks, keys, futures):
            # outside the lock: cancel() runs _finished (which takes it) right here
            if cancel_unstarted and id(fut) in own and fut.cancel():
                outcomes.append(TaskOutcome(task.get("id"), "late", reason="unstarted",
                                            error="not started within PREDICT_TIMEOUT; handed to the job queue"))
                late_ids.append(task.get("id"))
                self.metrics.tasks.labels("late").inc()
                continue
            with self._lock:
                # A future's state turns done before its callbacks run, so a task seen running here
                # is marked late before _finished can look.
                late = not fut.done()
                if late and (on_late is not None or key not in self._late):
                    self._late[key] = on_late
                elif self.outcomes is not None:  # a late one, delivered now: Label Studio stores it
                    self.outcomes.shorten(key, self._delivered_seconds)
                elif key in self._done:
                    expiry, kept = self._done[key]
                    self._done[key] = (min(expiry, time.monotonic() + self._delivered_seconds), kept)
            if not late:
                outcome = fut.result()
            else:
                outcome = TaskOutcome(
                    task.get("id"), "late", reason="late",
                    error=f"not finished within PREDICT_TIMEOUT={self.settings.predict_timeout:g}s; "
                    + ("still running, it will be written to Label Studio" if on_late else "still running, ask again to get it"),
                )
            outcomes.append(outcome)
            self.metrics.tasks.labels(outcome.status).inc()
            if outcome.status == "failed":
                self.metrics.task_failures.labels(outcome.reason or "unknown").inc()
                log.warning("task %s failed (%s): %s", outcome.task_id, outcome.reason, outcome.error)
            elif outcome.status == "late":
                late_ids.append(outcome.task_id)
        if late_ids:  # one line per batch, not one per task: a big batch can leave hundreds behind
            shown = ", ".join(f"task {i}" for i in late_ids[:20]) + (f" and {len(late_ids) - 20} more" if len(late_ids) > 20 else "")
            log.warning(
                "%d of %d tasks not finished within PREDICT_TIMEOUT=%gs, still running (served when asked again): %s",
                len(late_ids), len(tasks), self.settings.predict_timeout, shown,
            )
        return outcomes

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
