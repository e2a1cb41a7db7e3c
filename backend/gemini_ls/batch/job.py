"""A whole project pre-labelled through the Gemini Batch API, resumable, exactly once per task.

    tasks (Label Studio) -> the synchronous path's requests (planner, prompts, model routing,
    prepared images as Files API references) -> one batch per model -> results -> the synchronous
    path's parser and region converters (Predictor) -> predictions written to Label Studio in chunks

A Batch API job (`models/{model}:batchGenerateContent`) runs one model, and the planner routes a
mask project's requests to two (GEMINI_MASK_MODEL for masks, GEMINI_MODEL for the rest): so each
round submits one batch per model, and a task is written once all its requests are answered. The
regions of a request whose batch ended first are kept in the store until the other batch ends, so a
restart in between asks neither again.

One job system with `gemini-ls prelabel` and a click (jobs/): a task is claimed (jobs/claims.py,
owner `batch:{project}:{version}`) when it goes into a batch, the poller renews the claims while the
batch runs, and the write-back is jobs/batchhold.py's: versions read from Label Studio at write
time, claims turned `written` or released, exactly as an RQ chunk's. A task somebody else holds (a
click, a chunk) is left to it and not sent; a click or a chunk meeting this job's claim does the same.

Resumable: the job is a record of the one job store (jobs/state.py, kind "batch", id `batch:{project}:{version}`),
its batch data under it (`BatchState`). A process killed after submitting finds the batch there (or, killed
inside batches.create, by its display name) and polls it; it never submits the same tasks twice.
Exactly once: tasks that already hold a prediction of this model_version, or that this job wrote,
are never written again. A request the batch answered with an error is retried through the
synchronous path (the process's Gemini caller with its retries and shared cool-down) or reported
with its reason. A batch ending FAILED, CANCELLED (not by us) or EXPIRED is followed by one of what is missing.
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
from ..gemini.fewshot import FewShotWire
from ..gemini.files import FilesManager
from ..gemini.gateway import GeminiGateway
from ..gemini.kinds import prompt_for
from ..gemini.models import resolve
from ..gemini.pricing import Cost, Tokens, cost_by_model, cost_of
from ..jobs.batchhold import BatchHold
from ..jobs.records import BatchRecord, BatchState, by_reason
from ..labelconfig import ProjectSpec
from ..labelstudio import PredictionRecord
from ..plan import PlannedRequest, plan_requests
from ..predict import Fetch, Predictor, TaskFailure, TaskOutcome
from ..provider import ProviderError
from ..selectionrunner import ExampleAttacher
from .tiles import by_plan, expected_results, merged_answer, request_key, split_key

log = logging.getLogger("gemini_ls.batch")


class ProjectIO(Protocol):
    """Label Studio as the job needs it (labelstudio/project.py `LabelStudioProject`)."""

    def tasks(self) -> Iterator[dict]: ...  # {"id", "data", "model_versions": set of versions it holds}


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
    elsewhere: int = 0  # tasks another holder (a click, a `gemini-ls prelabel` chunk) predicts and writes

    def failures_by_reason(self) -> dict[str, int]:
        return by_reason(self.failed)


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


def requests_by_model(plans: tuple[PlannedRequest, ...], default: str) -> dict[str, tuple[int, ...]]:
    """model -> the indexes of the planned requests routed to it: one batch per model."""
    out: dict[str, list[int]] = {}
    for index, plan in enumerate(plans):
        out.setdefault(resolve(plan.model or default).name, []).append(index)
    return {model: tuple(indexes) for model, indexes in sorted(out.items())}


class BatchPrelabel:
    def __init__(
        self,
        *,
        predictor: Predictor,
        files: FilesManager,
        client: Any,
        store: BatchState,
        project: ProjectIO,
        hold: BatchHold,
        spec: ProjectSpec,
        model_version: str,
        fetch: Fetch,
        options: JobOptions = JobOptions(),
        echo: Callable[[str], None] = lambda _msg: None,
        sleep: Callable[[float], None] = time.sleep,
        few_shot: ExampleAttacher | None = None,
        fewshot_wire: FewShotWire | None = None,
    ) -> None:
        """`few_shot` (review/fewshot.FewShotBook) puts `model_version`'s example set on the plans and
        `fewshot_wire` turns it into prior turns, as the synchronous path does (FEW_SHOT_EXAMPLES).
        `spec` is the effective one: the review loop's thresholds and synonyms are in it, as on /predict."""
        self.predictor = predictor
        self.settings = predictor.settings
        self.metrics = predictor.metrics
        self.files = files
        self.client = client
        self.store = store
        self.project = project
        self.hold = hold  # the claims on the tasks, and the write-back (jobs/batchhold.py)
        self.spec = spec
        self.plans: tuple[PlannedRequest, ...] = plan_requests(spec, self.settings.routing)
        if few_shot is not None:
            self.plans = few_shot.attach(self.plans, spec, model_version)
        self.fewshot_wire = fewshot_wire
        self.by_model = requests_by_model(self.plans, self.settings.routing.model.name)
        self.model_of = {i: model for model, indexes in self.by_model.items() for i in indexes}  # request index -> model
        self.version = model_version
        self.fetch = fetch
        self.options = options
        self.echo = echo
        self._sleep = sleep
        self._sync_retried = 0
        self._elsewhere: dict[str, str] = {}  # task id -> the holder it is left to
        self._renewed = 0.0

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
        self.store.set_total(len(wanted.keys() | written))
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
            missing = [t for tid, t in wanted.items() if tid not in written and tid not in failed
                       and tid not in self._elsewhere]
            if not missing:
                break
            if rounds >= self.options.max_rounds:
                for task in missing:
                    self.store.add_failed(task["id"], f"batch_unanswered: no batch answered it in {rounds} attempt(s)")
                break
            rounds += 1
            if not self._submit(missing, wanted) and not wait:
                break
        # somebody may try these again; cancelled: nothing of this job is coming for them any more
        done = self.store.written()
        self.hold.release(int(t) for t in (wanted if state == "cancelled" else self.store.failed()) if t not in done)
        return self.report(state, len(wanted), started)

    def report(self, state: str, tasks: int, started: float) -> JobReport:
        cost = cost_by_model(self.store.usage(), self.settings.price_overrides, self.settings.batch_discount)
        return JobReport(
            job=self.store.job, model_version=self.version, state=state, tasks=tasks,
            written=len(self.store.written()), failed=self.store.failed(), batches=tuple(self.store.batches()),
            cost=cost, sync_retried=self._sync_retried, seconds=time.monotonic() - started,
            elsewhere=len(self._elsewhere),
        )

    # -- submit ------------------------------------------------------------------------------

    def _requests_for(self, task: Mapping[str, Any], indexes: tuple[int, ...]) -> list[tuple[str, str, Any]]:
        """The (model, key, InlinedRequest) of the task's requests at `indexes`: exactly what the
        synchronous path would send, to the model it would send them to."""
        task_id = task.get("id")
        deadline = time.monotonic() + 3 * self.settings.request_timeout
        plans = tuple(self.plans[i] for i in indexes)
        if any(c.labels_field for plan in plans for c in plan.controls):  # read back without the task's labels
            raise TaskFailure("task_labels", "labels from the task (value=\"$field\") are predicted by /predict and "
                              "the job queue, not by the Batch API path")
        _refs, prepared, raws = self.predictor.prepare_images_and_bytes(task, self.spec, plans, self.fetch)
        self.store.put_meta(task_id, {n: (p.width, p.height) for n, p in prepared.items()})
        out = []
        for index in indexes:
            plan = self.predictor.as_sent(self.plans[index], task)
            images = [prepared[n] for n in plan.image_names]
            prompt = prompt_for(plan, len(images))
            model = self.model_of[index]
            history = self.fewshot_wire.contents_for(plan, prompt, deadline=deadline, model=model) if (
                self.fewshot_wire is not None and plan.examples) else None
            grid = self.predictor.grid_for(plan, [(im.width, im.height) for im in images])
            # a tiled plan is one request per tile (tiling/), merged when the batch's results are read
            pieces = [(None, images)] if grid is None else [
                (k, [tile]) for k, tile in enumerate(self.predictor.tiles(images[0], raws[plan.image_names[0]], grid))]
            for tile_index, sent in pieces:
                try:
                    built = self.files.build(sent, {}, deadline=deadline)
                except GeminiError as exc:
                    raise TaskFailure(f"gemini_{exc.reason}", str(exc)) from exc
                key = request_key(task_id, index, tile_index)
                out.append((model, key, gbatches.inlined_request(self.settings, prompt, built.parts, plan.kind, key, model,
                                                                 history.contents if history is not None else ())))
        return out

    def _built(self, tasks: list[dict], need: Mapping[str, tuple[int, ...]]) -> Iterator[list[tuple[str, str, Any]]]:
        """Each task's needed requests, built `concurrency` at a time, in task order (a window, not the whole list)."""
        window = max(1, 2 * self.settings.concurrency)

        def build(task: dict) -> list[tuple[str, str, Any]]:
            try:
                return self._requests_for(task, need[str(task["id"])])
            except TaskFailure as exc:
                self.store.add_failed(task["id"], f"{exc.reason}: {exc.message}")
                log.warning("task %s not sent: %s", task["id"], exc.message)
                return []

        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="batch-build") as pool:
            for start in range(0, len(tasks), window):
                yield from pool.map(build, tasks[start : start + window])

    def _claim(self, tasks: list[dict], wanted: dict[str, dict]) -> list[dict]:
        """The tasks this job may send: claimed now (or already, by an earlier run of it); the others
        are left to their holder, never sent nor written by this job."""
        taken = self.hold.take([int(t["id"]) for t in tasks])
        for tid, holder in taken.elsewhere.items():
            self._elsewhere[str(tid)] = holder
            wanted.pop(str(tid), None)
        self.store.add_elsewhere(taken.elsewhere)
        if taken.elsewhere:
            self.echo(f"{len(taken.elsewhere)} task(s) are held by another job or a click; left to them")
        mine = set(taken.mine)
        return [t for t in tasks if int(t["id"]) in mine]

    def _renew(self, wanted: Mapping[str, dict]) -> None:
        """While a batch runs: its tasks' claims, renewed now and then (the lease is long)."""
        if time.monotonic() - self._renewed < 60:
            return
        self._renewed = time.monotonic()
        written = self.store.written()
        self.hold.renew(int(t) for t in wanted if t not in written)

    def _submit(self, tasks: list[dict], wanted: dict[str, dict]) -> bool:
        """One batch per model of what `tasks` still miss (requests whose regions are kept are not asked again)."""
        tasks = self._claim(tasks, wanted)
        if not tasks:
            return False
        asked = {str(t["id"]): [i for i in range(len(self.plans)) if i not in self.predictor.unasked(self.plans, t)] for t in tasks}
        kept = self.store.parts_of(t["id"] for t in tasks) if len(self.by_model) > 1 else {}
        need = {str(t["id"]): tuple(i for i in asked[str(t["id"])] if i not in kept.get(str(t["id"]), ())) for t in tasks}
        answered = _Round()  # every request's regions kept, the write not done (a restart in between)
        for task in (t for t in tasks if not need[str(t["id"])]):
            self._combine(task, {}, answered)
        self._flush(answered, final=True)
        tasks = [t for t in tasks if need[str(t["id"])]]
        limit = self.settings.batch_inline_limit_bytes
        writers = {m: gbatches.BatchWriter(self.client, inline_limit=limit, mode=self.options.mode) for m in self.by_model}
        try:
            for triples in self._built(tasks, need):
                for model, key, request in triples:
                    writers[model].add(key, request)
            submitted = False
            for model, writer in writers.items():
                if writer.count == 0:
                    continue
                display = f"gemini-ls {self.store.job} #{len(self.store.batches()) + 1}"
                self.store.set_submitting(display)
                job = writer.submit(model, display)
                if not job.name:
                    raise RuntimeError("batches.create answered without a batch name")
                self.store.put_batch(BatchRecord(job.name, "SUBMITTED", display, writer.count, writer.source, model))
                self.store.set_submitting(None)
                self.echo(f"submitted {job.name} to {model}: {writer.count} request(s) {writer.source} ({writer.bytes} bytes)")
                submitted = True
            return submitted
        finally:
            for writer in writers.values():
                writer.discard()

    def _adopt_orphan(self) -> None:
        """A process killed inside batches.create left a display name but no batch record: find the batch."""
        display = self.store.submitting()
        if display is None:
            return
        if not any(b.display_name == display for b in self.store.batches()):
            job = gbatches.find_by_display_name(self.client, display)
            if job is not None and job.name:
                model = str(job.model or "").removeprefix("models/")
                self.store.put_batch(BatchRecord(job.name, "SUBMITTED", display, 0, "unknown", model))
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
                                                 record.display_name, record.requests, record.source, record.model))
            self._renew(wanted)

        job = gbatches.wait(self.client, record.name, initial=self.settings.batch_poll_seconds,
                            maximum=self.settings.batch_poll_max, on_poll=on_poll, sleep=self._sleep)
        state = gbatches.state_word(job)
        if state == "SUCCEEDED":
            self._read(job, wanted, self._model_of(record, job))
        else:
            self.echo(f"{record.name} ended {state}: what it did not answer goes in a new batch")
        self.store.put_batch(BatchRecord(record.name, state, record.display_name, record.requests, record.source,
                                         record.model))

    def _model_of(self, record: BatchRecord, job: Any) -> str:
        """The model a batch ran: its record, else the Batch API's own answer (an adopted orphan)."""
        model = record.model or str(getattr(job, "model", "") or "").removeprefix("models/")
        if model not in self.by_model:
            if len(self.by_model) == 1:
                return next(iter(self.by_model))
            raise RuntimeError(f"{record.name} ran {model or 'an unknown model'}, none of this job's {sorted(self.by_model)}")
        return model

    def _read(self, job: Any, wanted: dict[str, dict], model: str) -> None:
        round_ = _Round()
        partial: dict[str, dict[tuple[int, int], gbatches.Result]] = {}
        expected: dict[str, int] = {}
        written = self.store.written()
        usage = Tokens()
        for result in gbatches.results(self.client, job):
            if result.reply is not None:
                u = result.reply.usage
                usage = usage + Tokens(u.prompt_tokens, u.output_tokens, u.thoughts_tokens, 1, u.cached_tokens)
                self.metrics.batch_requests.labels("ok").inc()
            else:
                self.metrics.batch_requests.labels("error").inc()
            tid, index = split_key(result.key)
            if tid not in wanted or tid in written or tid in self._elsewhere:
                continue  # not ours to write (anymore): never a second prediction
            got = partial.setdefault(tid, {})
            got[index] = result
            if tid not in expected:
                expected[tid] = expected_results([self.plans[i] for i in self.by_model[model]],
                                                 self.store.meta(wanted[tid]["id"]) or {})
            if len(got) == expected[tid]:
                self._settle(wanted[tid], partial.pop(tid), round_)
        for tid in partial:  # a task with requests missing from the results
            round_.retry[tid] = "the batch returned no result for some of its requests"
        self._account(model, usage)
        self._flush(round_, final=True)
        if round_.retry:
            self._retry(round_.retry, wanted)

    def _account(self, model: str, usage: Tokens) -> None:
        self.store.add_usage(model, usage)
        for direction, n in (("input", usage.prompt), ("output", usage.output), ("thoughts", usage.thoughts)):
            self.metrics.batch_tokens.labels(direction).inc(n)
        cost = cost_of(model, usage, self.settings.price_overrides, self.settings.batch_discount)
        if cost.batch_usd is not None and cost.sync_usd is not None:
            self.metrics.batch_cost.labels("batch").inc(cost.batch_usd)
            self.metrics.batch_cost.labels("sync").inc(cost.sync_usd)

    def _settle(self, task: dict, answers: dict[tuple[int, int], gbatches.Result], round_: _Round) -> None:
        """One batch's answers for a task: retried if one failed, else its regions, with the task
        written when its other model's regions are in too."""
        errors = [r.error for r in answers.values() if r.error is not None]
        tid = str(task["id"])
        if errors:
            round_.retry[tid] = errors[0]
            return
        sizes = self.store.meta(task["id"])
        if sizes is None:
            round_.retry[tid] = "its image sizes were not recorded"
            return
        metas = {n: ImageMeta(n, w, h) for n, (w, h) in sizes.items()}
        started = time.monotonic()
        try:
            found = {index: self._regions(task["id"], index, tiles, metas) for index, tiles in by_plan(answers).items()}
        except TaskFailure as exc:
            self.store.drop_parts(tid, range(len(self.plans)))
            self._emit(TaskOutcome(task["id"], "failed", error=exc.message, reason=exc.reason), round_)
            return
        self._combine(task, found, round_, started)

    def _regions(self, task_id: Any, index: int, results: dict[int, gbatches.Result], metas: Mapping[str, ImageMeta]) -> list[dict]:
        """A plan's regions from its result, or from its tiles' results (tile -> result) merged."""
        plan = self.plans[index]
        try:  # _settle sent errors elsewhere: every result has a reply
            answers = {tile: GeminiGateway.parse(plan, r.reply, 1 if tile >= 0 else len(plan.image_names))
                       for tile, r in results.items() if r.reply is not None}
        except ProviderError as exc:
            raise TaskFailure(exc.reason, exc.message, upstream=True) from exc
        meta = metas[plan.image_names[0]]
        parsed = merged_answer(plan, answers, (meta.width, meta.height))
        return self.predictor.answer_regions(plan, metas, self.predictor.counted(parsed, task_id))

    def _combine(self, task: dict, found: dict[int, list[dict]], round_: _Round, started: float | None = None) -> None:
        """Write the task when every request's regions are in (this batch's and those kept from another)."""
        tid, unasked = str(task["id"]), {i: list[dict]() for i in self.predictor.unasked(self.plans, task)}  # questions it lacks
        have = {**unasked, **(self.store.parts(tid) if len(self.by_model) > 1 else {}), **found}
        if len(have) < len(self.plans):
            self.store.put_parts(tid, found)  # until the batch of the task's other model ends
            return
        regions = [r for index in range(len(self.plans)) for r in have[index]]
        self._emit(self.predictor.finish(self.spec, task["id"], regions, started or time.monotonic()), round_)

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
            done = self.hold.write([PredictionRecord.from_payload(p) for p in chunk])
            report = done.report
            self.store.add_written([*report.written, *report.already])
            for tid, why in report.failed.items():
                self.store.add_failed(tid, f"writeback: {why}")
            for tid, holder in done.elsewhere.items():
                self._elsewhere[str(tid)] = holder
            self.store.add_elsewhere(done.elsewhere)
            self.metrics.writeback.labels("written").inc(len(report.written))
            self.metrics.writeback.labels("already").inc(len(report.already))
            self.metrics.writeback.labels("failed").inc(len(report.failed))
            if len(self.by_model) > 1:  # kept regions are dropped only once Label Studio holds the task's prediction
                for tid in (*report.written, *report.already):
                    self.store.drop_parts(tid, range(len(self.plans)))

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
