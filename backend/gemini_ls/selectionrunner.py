"""`SelectionRunner` runs a /predict selection with bounded concurrency and a deadline.

What is not done by the deadline is answered without a `result` (Label Studio stores nothing, so a
later "Retrieve predictions" fills it), keeps running, and is served from memory when Label Studio
asks again, so nothing is computed twice. Each task is one `Predictor.predict_task` (predict.py).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any, Protocol

from .labelconfig import ProjectSpec
from .metrics import Metrics
from .plan import PlannedRequest, images_needed, plan_requests
from .predict import Fetch, Predictor, TaskFailure, TaskOutcome, image_refs, task_key
from .settings import Settings

log = logging.getLogger("gemini_ls.predict")


class OutcomeStore(Protocol):
    """Finished outcomes shared by every process (jobs/outcomes.py's Redis store, with REDIS_URL)."""

    def get(self, key: str) -> TaskOutcome | None: ...

    def put(self, key: str, outcome: TaskOutcome, seconds: float) -> None: ...

    def shorten(self, key: str, seconds: float) -> None: ...


class ExampleAttacher(Protocol):
    """Puts a model_version's few-shot examples onto its plans (review/fewshot.py's FewShotBook)."""

    def attach(self, plans: Sequence[PlannedRequest], spec: ProjectSpec, model_version: str) -> tuple[PlannedRequest, ...]: ...


class SelectionRunner:
    """Runs selections on one bounded pool shared by every /predict of the process."""

    def __init__(
        self, predictor: Predictor, settings: Settings, metrics: Metrics, *,
        keep_seconds: float = 3600, delivered_seconds: float = 120, keep_max: int = 20000, outcomes: OutcomeStore | None = None,
    ) -> None:
        self.predictor = predictor
        self.settings = settings
        self.metrics = metrics
        self.pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="predict")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}
        self._done: OrderedDict[str, tuple[float, TaskOutcome]] = OrderedDict()
        # running tasks whose selection answered without them -> who takes them when done (None: kept
        # here for the next request)
        self._late: dict[str, Callable[[TaskOutcome], None] | None] = {}
        self._keep_seconds = keep_seconds
        self._delivered_seconds = delivered_seconds
        self._keep_max = keep_max
        # finished outcomes shared by every process (jobs/outcomes.py, with REDIS_URL); else self._done
        self.outcomes = outcomes
        self.few_shot: ExampleAttacher | None = None  # the model_version's examples onto the plans

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

        A task whose selection already answered without it is kept up to `keep_seconds`, until asked
        for; any other only `delivered_seconds`, longer than Label Studio's 100 s wait, so a selection
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
        if handler is not None:  # its selection handed it on (background write-back): not kept for a re-run
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
                        # A task's own clock starts when it starts: one that misses the selection's deadline
                        # still finishes and is served from memory on the next request.
                        return self.predictor.predict_task(
                            task, spec, plans, fetch, deadline=time.monotonic() + budget, uses_by_ref=uses_by_ref
                        )

                    # with the caller's context: a job chunk's usage tally (gemini/usage.py) sees its tasks' calls
                    fut = submitted = self.pool.submit(contextvars.copy_context().run, job)
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
        if late_ids:  # one line per selection, not one per task: a big selection can leave hundreds behind
            shown = ", ".join(f"task {i}" for i in late_ids[:20]) + (f" and {len(late_ids) - 20} more" if len(late_ids) > 20 else "")
            log.warning(
                "%d of %d tasks not finished within PREDICT_TIMEOUT=%gs, still running (served when asked again): %s",
                len(late_ids), len(tasks), self.settings.predict_timeout, shown,
            )
        return outcomes

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
