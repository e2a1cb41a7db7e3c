"""A whole project pre-labelled through the Gemini Batch API, resumable, exactly once per task.

    tasks (Label Studio) -> the synchronous path's requests (planner, prompts, prepared images as
    Files API references) -> one batch -> results -> the synchronous path's parser and region
    converters (Predictor) -> predictions written to Label Studio in chunks

Resumable: the job's state lives in a `JobStore` (Redis per project and model_version). A process
killed after submitting finds the batch there (or, killed inside batches.create, by its display
name) and polls it; it never submits the same tasks twice while a batch for them is alive.
Exactly once: tasks that already hold a prediction of this model_version, or that this job wrote,
are never written again. A request the batch answered with an error is retried through the
synchronous path (the process's Gemini caller with its retries and shared cool-down) or reported
with its reason. A batch that ends FAILED, CANCELLED (not by us) or EXPIRED is followed by one
holding only what is still missing, at most `max_rounds` times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..detections import ImageMeta
from ..gemini import batches as gbatches
from ..gemini.errors import GeminiError
from ..gemini.files import FilesManager
from ..gemini.gateway import GeminiGateway
from ..gemini.kinds import KINDS
from ..labelconfig import ProjectSpec
from ..plan import PlannedRequest, plan_requests
from ..predict import Fetch, Predictor, TaskFailure, TaskOutcome
from ..provider import ProviderError
from .pricing import Cost, Tokens, cost_of
from .store import BatchRecord, JobStore

log = logging.getLogger("gemini_ls.batch")


class ProjectIO(Protocol):
    """Label Studio as the job needs it (batch/labelstudio.py)."""

    def tasks(self) -> Iterator[dict]: ...  # {"id", "data", "model_versions": set of versions it holds}
    def write(self, predictions: list[dict]) -> None: ...


@dataclass(frozen=True)
class JobReport:
    job: str
    model_version: str
    state: str  # done | waiting | cancelled
    tasks: int  # tasks this job is for (without a prediction of the version when it started)
    written: int
    failed: Mapping[str, str]
    batches: tuple[BatchRecord, ...]
    cost: Cost
    sync_retried: int = 0
    seconds: float = 0.0

    def failures_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for text in self.failed.values():
            reason = text.split(":", 1)[0]
            out[reason] = out.get(reason, 0) + 1
        return out


def _key(task_id: Any, index: int) -> str:
    return f"{task_id}/{index}"


def _split(key: str) -> tuple[str, int]:
    task_id, _, index = key.rpartition("/")
    return task_id, int(index)


@dataclass(frozen=True)
class JobOptions:
    mode: str = "auto"  # auto | inline | file (gemini/batches.BatchWriter)
    sync_retry: bool = True  # requests the batch failed: retried synchronously, else reported
    max_rounds: int = 3  # batches tried for what is still missing
    chunk: int = 100  # predictions per write to Label Studio


@dataclass
class _Round:
    """What one batch's results produced: predictions to write and tasks to retry synchronously."""

    pending: list[dict] = field(default_factory=list)
    retry: dict[str, str] = field(default_factory=dict)  # task id -> the batch's error


class BatchModelsError(ValueError):
    """The project's requests go to more than one model, and a Batch API job runs one model."""


def single_model(plans: tuple[PlannedRequest, ...], default: str) -> str:
    """The one model every planned request is routed to; BatchModelsError naming them otherwise.

    A batch (`models/{model}:batchGenerateContent`) runs one model. With the default routing a
    project with brush or polygon controls sends masks to GEMINI_MASK_MODEL and everything else to
    GEMINI_MODEL, so batch mode asks the user to choose one for this run."""
    models = sorted({plan.model or default for plan in plans})
    if len(models) != 1:
        by_kind = ", ".join(sorted({f"{plan.kind.value} -> {plan.model or default}" for plan in plans}))
        raise BatchModelsError(
            f"batch mode runs one model per job, but this project's requests go to {len(models)} ({by_kind}); "
            "set GEMINI_MASK_MODEL and GEMINI_MODEL to the same model for the batch run (a 2.5 model answers "
            "masks as PNG maps, a 3.x model as polygons), or drop the config's model_name / model_mask_name"
        )
    return models[0]


class BatchPrelabel:
    def __init__(
        self,
        *,
        predictor: Predictor,
        files: FilesManager,
        client: Any,
        store: JobStore,
        project: ProjectIO,
        spec: ProjectSpec,
        model_version: str,
        fetch: Fetch,
        options: JobOptions = JobOptions(),
        echo: Callable[[str], None] = lambda _msg: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.predictor = predictor
        self.settings = predictor.settings
        self.metrics = predictor.metrics
        self.files = files
        self.client = client
        self.store = store
        self.project = project
        self.spec = spec
        self.plans: tuple[PlannedRequest, ...] = plan_requests(spec, self.settings.routing)
        self.model = single_model(self.plans, self.settings.routing.model.name)  # BatchModelsError
        store.set_model(self.model)
        self.version = model_version
        self.fetch = fetch
        self.options = options
        self.echo = echo
        self._sleep = sleep
        self._sync_retried = 0

    # -- the job -----------------------------------------------------------------------------

    def run(self, *, wait: bool = True, force: bool = False) -> JobReport:
        started = time.monotonic()
        self.store.clear_failed(self.store.failed())  # every run tries again what an earlier one could not do
        if force and self.store.cancelled():
            self.store.cancel(False)
            self.echo(f"{self.store.job} was cancelled; --force starts it again")
        written = self.store.written()
        wanted: dict[str, dict] = {}
        for task in self.project.tasks():
            tid = str(task["id"])
            if tid in written or (not force and self.version in task.get("model_versions", ())):
                continue
            wanted[tid] = task
        self.echo(f"{self.store.job}: {len(wanted)} task(s) to pre-label")
        state = "done"
        rounds = 0
        while True:
            if self.store.cancelled():
                self.echo(f"{self.store.job} was cancelled (gemini-ls jobs cancel); --force starts it again")
                state = "cancelled"
                break
            self._adopt_orphan()
            active = [b for b in self.store.batches() if b.active]
            if active:
                if not wait:
                    state = "waiting"
                    break
                for record in active:
                    self._finish(record, wanted)
                continue
            failed, written = self.store.failed(), self.store.written()
            missing = [t for tid, t in wanted.items() if tid not in written and tid not in failed]
            if not missing:
                break
            if rounds >= self.options.max_rounds:
                for task in missing:
                    self.store.add_failed(task["id"], f"batch_unanswered: no batch answered it in {rounds} attempt(s)")
                break
            rounds += 1
            if not self._submit(missing) and not wait:
                break
        return self.report(state, len(wanted), started)

    def report(self, state: str, tasks: int, started: float) -> JobReport:
        prices = {m: (i, o) for m, i, o in self.settings.prices}
        cost = cost_of(self.model, self.store.usage(), prices, self.settings.batch_discount)
        return JobReport(
            job=self.store.job, model_version=self.version, state=state, tasks=tasks,
            written=len(self.store.written()), failed=self.store.failed(), batches=tuple(self.store.batches()),
            cost=cost, sync_retried=self._sync_retried, seconds=time.monotonic() - started,
        )

    # -- submit ------------------------------------------------------------------------------

    def _requests_for(self, task: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """The (key, InlinedRequest) pairs of one task: exactly what the synchronous path would send."""
        task_id = task.get("id")
        deadline = time.monotonic() + 3 * self.settings.request_timeout
        _refs, prepared = self.predictor.prepare_images(task, self.spec, self.plans, self.fetch)
        self.store.put_meta(task_id, {n: (p.width, p.height) for n, p in prepared.items()})
        out = []
        for index, plan in enumerate(self.plans):
            images = [prepared[n] for n in plan.image_names]
            prompt = KINDS[plan.kind].prompt(plan, len(images))
            try:
                built = self.files.build(images, {}, deadline=deadline)
            except GeminiError as exc:
                raise TaskFailure(f"gemini_{exc.reason}", str(exc)) from exc
            key = _key(task_id, index)
            out.append((key, gbatches.inlined_request(self.settings, prompt, built.parts, plan.kind, key, self.model)))
        return out

    def _built(self, tasks: list[dict]) -> Iterator[list[tuple[str, Any]]]:
        """Each task's requests, built `concurrency` at a time, in task order (a window, not the whole list)."""
        window = max(1, 2 * self.settings.concurrency)

        def build(task: dict) -> list[tuple[str, Any]]:
            try:
                return self._requests_for(task)
            except TaskFailure as exc:
                self.store.add_failed(task["id"], f"{exc.reason}: {exc.message}")
                log.warning("task %s not sent: %s", task["id"], exc.message)
                return []

        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="batch-build") as pool:
            for start in range(0, len(tasks), window):
                yield from pool.map(build, tasks[start : start + window])

    def _submit(self, tasks: list[dict]) -> bool:
        writer = gbatches.BatchWriter(self.client, inline_limit=self.settings.batch_inline_limit_bytes, mode=self.options.mode)
        try:
            for pairs in self._built(tasks):
                for key, request in pairs:
                    writer.add(key, request)
            if writer.count == 0:
                return False
            display = f"gemini-ls {self.store.job} #{len(self.store.batches()) + 1}"
            self.store.set_submitting(display)
            job = writer.submit(self.model, display)
            if not job.name:
                raise RuntimeError("batches.create answered without a batch name")
            self.store.put_batch(BatchRecord(job.name, "SUBMITTED", display, writer.count, writer.source))
            self.store.set_submitting(None)
            self.echo(f"submitted {job.name}: {writer.count} request(s) {writer.source} ({writer.bytes} bytes)")
            return True
        finally:
            writer.discard()

    def _adopt_orphan(self) -> None:
        """A process killed inside batches.create left a display name but no batch record: find the batch."""
        display = self.store.submitting()
        if display is None:
            return
        if not any(b.display_name == display for b in self.store.batches()):
            job = gbatches.find_by_display_name(self.client, display)
            if job is not None and job.name:
                self.store.put_batch(BatchRecord(job.name, "SUBMITTED", display, 0, "unknown"))
                self.echo(f"found {job.name}, created before a restart")
        self.store.set_submitting(None)

    # -- results -----------------------------------------------------------------------------

    def _finish(self, record: BatchRecord, wanted: dict[str, dict]) -> None:
        last: list[str] = []

        def on_poll(job: Any) -> None:
            state = gbatches.state_word(job)
            if not last or last[-1] != state:
                last.append(state)
                self.echo(f"{record.name}: {state}")
                self.store.put_batch(BatchRecord(record.name, state if state not in gbatches.END_STATES else "RUNNING",
                                                 record.display_name, record.requests, record.source))

        job = gbatches.wait(self.client, record.name, initial=self.settings.batch_poll_seconds,
                            maximum=self.settings.batch_poll_max, on_poll=on_poll, sleep=self._sleep)
        state = gbatches.state_word(job)
        if state == "SUCCEEDED":
            self._read(job, wanted)
        else:
            self.echo(f"{record.name} ended {state}: what it did not answer goes in a new batch")
        self.store.put_batch(BatchRecord(record.name, state, record.display_name, record.requests, record.source))

    def _read(self, job: Any, wanted: dict[str, dict]) -> None:
        round_ = _Round()
        partial: dict[str, dict[int, gbatches.Result]] = {}
        written = self.store.written()
        usage = Tokens()
        for result in gbatches.results(self.client, job):
            if result.reply is not None:
                u = result.reply.usage
                usage = usage + Tokens(u.prompt_tokens, u.output_tokens, u.thoughts_tokens, 1)
                self.metrics.batch_requests.labels("ok").inc()
            else:
                self.metrics.batch_requests.labels("error").inc()
            tid, index = _split(result.key)
            if tid not in wanted or tid in written:
                continue  # not ours to write (anymore): never a second prediction
            got = partial.setdefault(tid, {})
            got[index] = result
            if len(got) == len(self.plans):
                self._settle(wanted[tid], partial.pop(tid), round_)
        for tid in partial:  # a task with requests missing from the results
            round_.retry[tid] = "the batch returned no result for some of its requests"
        self._account(usage)
        self._flush(round_, final=True)
        if round_.retry:
            self._retry(round_.retry, wanted)

    def _account(self, usage: Tokens) -> None:
        self.store.add_usage(usage)
        for direction, n in (("input", usage.prompt), ("output", usage.output), ("thoughts", usage.thoughts)):
            self.metrics.batch_tokens.labels(direction).inc(n)
        prices = {m: (i, o) for m, i, o in self.settings.prices}
        cost = cost_of(self.model, usage, prices, self.settings.batch_discount)
        if cost.batch_usd is not None and cost.sync_usd is not None:
            self.metrics.batch_cost.labels("batch").inc(cost.batch_usd)
            self.metrics.batch_cost.labels("sync").inc(cost.sync_usd)

    def _settle(self, task: dict, answers: dict[int, gbatches.Result], round_: _Round) -> None:
        errors = [r.error for r in answers.values() if r.error is not None]
        tid = str(task["id"])
        if errors:
            round_.retry[tid] = errors[0]
            return
        outcome = self._outcome(task, answers)
        if outcome is None:
            round_.retry[tid] = "its image sizes were not recorded"
        else:
            self._emit(outcome, round_)

    def _outcome(self, task: dict, answers: dict[int, gbatches.Result]) -> TaskOutcome | None:
        started = time.monotonic()
        sizes = self.store.meta(task["id"])
        if sizes is None:
            return None
        metas = {n: ImageMeta(n, w, h) for n, (w, h) in sizes.items()}
        regions: list[dict] = []
        try:
            for index, plan in enumerate(self.plans):
                reply = answers[index].reply
                assert reply is not None  # _settle sent errors elsewhere
                try:
                    parsed = GeminiGateway.parse(plan, reply, len(plan.image_names))
                except ProviderError as exc:
                    raise TaskFailure(exc.reason, exc.message, upstream=True) from exc
                answer = self.predictor.counted(parsed, task["id"])
                regions.extend(self.predictor.answer_regions(plan, metas, answer))
        except TaskFailure as exc:
            return TaskOutcome(task["id"], "failed", error=exc.message, reason=exc.reason)
        return self.predictor.finish(self.spec, task["id"], regions, started)

    def _emit(self, outcome: TaskOutcome, round_: _Round) -> None:
        self.metrics.tasks.labels(outcome.status).inc()
        if not outcome.succeeded:
            self.metrics.task_failures.labels(outcome.reason or "unknown").inc()
            self.store.add_failed(outcome.task_id, f"{outcome.reason}: {outcome.error}")
            return
        entry = outcome.to_response(self.version)
        entry["task"] = outcome.task_id
        round_.pending.append(entry)
        self._flush(round_)

    def _flush(self, round_: _Round, *, final: bool = False) -> None:
        while round_.pending and (final or len(round_.pending) >= self.options.chunk):
            chunk, round_.pending = round_.pending[: self.options.chunk], round_.pending[self.options.chunk :]
            self.project.write(chunk)
            self.store.add_written(p["task"] for p in chunk)

    def _retry(self, errors: dict[str, str], wanted: dict[str, dict]) -> None:
        if not self.options.sync_retry:
            for tid, error in errors.items():
                self.store.add_failed(tid, f"batch_error: {error}")
            return
        self.echo(f"{len(errors)} task(s) had requests failed inside the batch; retrying them synchronously")
        round_ = _Round()

        def one(tid: str) -> TaskOutcome:
            return self.predictor.predict_task(
                wanted[tid], self.spec, self.plans, self.fetch, deadline=time.monotonic() + self.settings.predict_timeout
            )

        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="batch-retry") as pool:
            for tid, outcome in zip(errors, pool.map(one, errors)):
                self._sync_retried += 1
                if not outcome.succeeded:
                    outcome = TaskOutcome(outcome.task_id, "failed", reason=outcome.reason,
                                          error=f"{outcome.error} (in the batch: {errors[tid]})")
                self._emit(outcome, round_)
        self._flush(round_, final=True)
