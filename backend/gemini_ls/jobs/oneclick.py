"""One "Retrieve predictions" click finishes the whole selection.

Label Studio sends the selection in ONE /predict and waits 100 s. What is done by PREDICT_TIMEOUT
is answered as today (Label Studio stores it); the rest keeps running in this process's pool (no
task is started over) and, as each finishes, goes to a background writer that posts it to Label
Studio through its API with the same model_version. The /predict answer keeps its contract: late
tasks come back without `result`, so Label Studio stores nothing for them itself.

Exactly once, also across clicks, workers and `gemini-ls prelabel` jobs: every task of a click is
claimed for (project, model_version) before it is computed (claims.py). A task somebody else holds
(a running job, an earlier click's background write) is answered without `result` and left to its
holder; a task answered with a result is marked `delivered`; a late one is marked `written` once the
writer (which also asks Label Studio first) has stored it.

Durable with REDIS_URL (and Label Studio credentials from the environment, which every worker
has too): the remainder of a click also lives in RQ, so a dead server loses nothing. At the
deadline, tasks not started yet are taken off this process's pool; every late task becomes one job
(jobs/state.py, `handed_by` = this click's claim owner) on the RQ queue. The not-started ones are
released at once for any `gemini-ls worker` (or serve's embedded one) to take; the running ones stay
claimed by this process under a short lease it keeps renewing while it finishes and writes them.
The job waits for those: written ones are confirmed in Label Studio and left alone; when this
process died, their lease lapses and the job predicts and writes them itself.

Without Label Studio credentials (LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY, or /setup's) there is no
way to write, so late tasks fall back to the re-run contract: kept in memory and served on the next
click. That is said once in the log and in /health.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..labelstudio import CredentialStore, LabelStudioApi, PredictionRecord, PredictionWriter
from ..metrics import Metrics
from ..predict import BatchRunner, Fetch, TaskOutcome
from ..review.learning import LearnedState, adjust_outcomes
from ..settings import Settings
from .claims import DELIVERED, DELIVERED_SECONDS, WRITTEN, WRITTEN_SECONDS, Claims, queued_owner, scope_of

log = logging.getLogger("gemini_ls.jobs")


def project_id(project_field: Any, tasks: Sequence[Mapping[str, Any]]) -> int | None:
    """Label Studio's `project` in /predict is "<id>.<created_at epoch>"; tasks carry the bare id."""
    for value in (project_field, *(t.get("project") for t in tasks[:1])):
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.split(".", 1)[0].isdigit():
            return int(value.split(".", 1)[0])
    return None


def adjust_one(learned: LearnedState, outcome: TaskOutcome) -> TaskOutcome:
    return adjust_outcomes(learned, [outcome])[0]


def make_writer(settings: Settings, api: LabelStudioApi) -> PredictionWriter:
    return PredictionWriter(api, chunk=settings.writeback_chunk, attempts=settings.writeback_attempts)


class Leases:
    """Keeps this process's claims on the tasks it is finishing alive (a short lease, renewed),
    so that they lapse soon after the process dies and a job can take them over."""

    def __init__(self, claims: Claims, ttl: float) -> None:
        self.claims = claims
        self.ttl = ttl
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], set[int]] = {}  # (scope, owner) -> task ids
        threading.Thread(target=self._loop, name="claim-leases", daemon=True).start()

    def hold(self, scope: str, owner: str, task_ids: Sequence[int]) -> None:
        with self._lock:
            self._held.setdefault((scope, owner), set()).update(task_ids)
        self.claims.renew(scope, task_ids, owner, self.ttl)

    def drop(self, scope: str, owner: str, task_ids: Sequence[int]) -> None:
        with self._lock:
            held = self._held.get((scope, owner))
            if held is not None:
                held.difference_update(task_ids)
                if not held:
                    del self._held[(scope, owner)]

    def _loop(self) -> None:
        while True:
            time.sleep(self.ttl / 3)
            with self._lock:
                items = [(k, list(v)) for k, v in self._held.items()]
            for (scope, owner), ids in items:
                try:
                    kept = self.claims.renew(scope, ids, owner, self.ttl)
                except Exception as exc:  # a Redis blip: the next round tries again
                    log.warning("one-click: could not renew %d task claims: %s", len(ids), exc)
                    continue
                self.drop(scope, owner, [t for t in ids if t not in kept])  # written or lost meanwhile


class Handoff:
    """Puts a click's remainder on the RQ queue as one job (see the module docstring)."""

    def __init__(self, settings: Settings, store: Any, queue: Any) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue

    def submit(self, claims: Claims, scope: str, project: int, version: str, label_config: str, ls_url: str, owner: str,
               first: Sequence[Mapping[str, Any]], running: Sequence[Mapping[str, Any]]) -> str:
        """`first`: tasks not started, whose claims go to the job right away (so a second click
        leaves them to it); `running`: tasks this process finishes, the job waits for them."""
        from .state import JobInfo, new_job_id

        info = JobInfo(id=new_job_id(), project=project, model_version=version, total=len(first) + len(running),
                       created=time.time(), ls_url=ls_url, handed_by=owner)
        self.store.create(info, label_config)
        s = self.settings
        queued = queued_owner(info.id)
        moved = claims.transfer(scope, [int(t["id"]) for t in first], owner, queued,
                                max(3600.0, s.job_timeout * (s.job_retries + 1)))
        first = [t for t in first if int(t["id"]) in moved]
        size = self.settings.job_chunk
        # the tasks nobody works on first; the ones this process is finishing last, in their own
        # chunks (a worker taking those mostly confirms they were written)
        chunks = [list(group[i : i + size]) for group in (first, running) for i in range(0, len(group), size)]
        try:
            rq_ids = self.queue.submit(info.id, chunks)
        except Exception:
            claims.release(scope, moved, queued)
            raise
        self.store.set_chunks(info.id, len(chunks), rq_ids)
        return info.id


@dataclass(frozen=True)
class _Late:
    project: int
    scope: str
    owner: str
    outcome: TaskOutcome
    model_version: str


class BackgroundWriter:
    """Threads that batch finished late tasks into chunks and write them (one set per process).

    Two writers: while one waits for Label Studio (the check, then the POST), the other fills its
    next chunk; claims keep them from ever writing the same task."""

    def __init__(self, settings: Settings, metrics: Metrics, claims: Claims, api_for: Callable[[], LabelStudioApi | None],
                 *, flush_seconds: float = 1.0, threads: int = 2, leases: Leases | None = None) -> None:
        self.leases = leases
        self.settings = settings
        self.metrics = metrics
        self.claims = claims
        self._api_for = api_for
        self._flush_seconds = flush_seconds
        self._queue: queue.Queue[_Late] = queue.Queue()
        self._pending = 0
        self._quiet_until = 0.0
        self._lock = threading.Lock()
        for i in range(threads):
            threading.Thread(target=self._loop, name=f"write-back-{i}", daemon=True).start()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def submit(self, item: _Late) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put(item)

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            end = time.monotonic() + self._flush_seconds
            while len(batch) < self.settings.writeback_chunk:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, end - time.monotonic())))
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception:  # the writer thread must survive anything
                log.exception("write-back: unexpected error")
            if self.leases is not None:
                for item in batch:
                    self.leases.drop(item.scope, item.owner, [int(item.outcome.task_id)])
            with self._lock:
                self._pending -= len(batch)

    def quiet_for(self, seconds: float) -> None:
        """Label Studio is storing a /predict answer now: on SQLite our imports would fight it for
        the database lock (and its retry middleware re-runs the whole /predict), so hold off."""
        with self._lock:
            self._quiet_until = max(self._quiet_until, time.monotonic() + min(30.0, seconds))

    def _write(self, batch: list[_Late]) -> None:
        with self._lock:
            hold = self._quiet_until - time.monotonic()
        if hold > 0:
            time.sleep(hold)
        by_project: dict[int, list[_Late]] = {}
        for item in batch:
            by_project.setdefault(item.project, []).append(item)
        api = self._api_for()
        for project, items in by_project.items():
            if api is None:
                for item in items:
                    self.claims.release(item.scope, [int(item.outcome.task_id)], item.owner)
                log.error("write-back: no Label Studio credentials any more; %d late tasks of project %s were not written "
                          "(the next Retrieve predictions fills them)", len(items), project)
                self.metrics.writeback.labels("failed").inc(len(items))
                continue
            records = [
                PredictionRecord(int(i.outcome.task_id), i.outcome.result or (), i.model_version, i.outcome.score) for i in items
            ]
            report = make_writer(self.settings, api).write(project, records)
            by_task = {int(i.outcome.task_id): i for i in items}
            for outcome, tids in (("written", report.written), ("already", report.already)):
                self.metrics.writeback.labels(outcome).inc(len(tids))
                for tid in tids:
                    item = by_task[tid]
                    self.claims.finish(item.scope, [tid], WRITTEN, WRITTEN_SECONDS)
            for tid, why in report.failed.items():
                item = by_task[tid]
                self.claims.release(item.scope, [tid], item.owner)
                self.metrics.writeback.labels("failed").inc()
                log.error("write-back: task %s of project %s not written: %s", tid, project, why)
            log.info("write-back to project %s: %d written, %d already there, %d failed",
                     project, len(report.written), len(report.already), len(report.failed))


class OneClick:
    """Runs a /predict batch through the BatchRunner with claims and background write-back."""

    def __init__(self, settings: Settings, metrics: Metrics, runner: BatchRunner, claims: Claims,
                 credentials: CredentialStore, handoff: Handoff | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.runner = runner
        self.claims = claims
        self.credentials = credentials
        self.handoff = handoff
        self._owner_base = f"predict:{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._announced: bool | None = None
        # the short lease a job waits out before it takes over a dead process's tasks
        self.leases = Leases(claims, max(6.0, 3 * settings.job_heartbeat)) if handoff is not None else None
        self.writer = BackgroundWriter(settings, metrics, claims, self.api, leases=self.leases)

    def api(self) -> LabelStudioApi | None:
        auth = self.credentials.current()
        return LabelStudioApi(auth, timeout=self.settings.writeback_timeout) if auth is not None else None

    def durable(self) -> bool:
        """The remainder goes to RQ: Redis is there, and the credentials are the environment's
        (every worker has them; a key Label Studio sent to this process's /setup it does not)."""
        auth = self.credentials.current()
        return self.handoff is not None and auth is not None and auth.source == "env"

    def status(self) -> dict:
        on = self.credentials.current() is not None
        return {
            "enabled": on,
            "mode": ("late tasks written to Label Studio through its API"
                     + (", the remainder of a click kept on the RQ queue (durable)" if self.durable() else "")) if on else
            "off: no Label Studio credentials; late tasks are kept and served on the next Retrieve predictions",
            "pending": self.writer.pending,
        }

    def _announce(self, on: bool) -> None:
        if on == self._announced:
            return
        self._announced = on
        if on:
            log.info("one-click: tasks not done by PREDICT_TIMEOUT are finished in the background and written to Label Studio")
        else:
            log.warning("one-click write-back is OFF: no Label Studio credentials (LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY, "
                        "or /setup's); tasks not done by PREDICT_TIMEOUT are filled by the next Retrieve predictions")

    def _cap(self, done: list[TaskOutcome], project: int, scope: str, owner: str, version: str,
             learned: LearnedState) -> list[TaskOutcome]:
        """Label Studio stores a /predict answer's predictions one by one through its serializer
        (~0.3 s each on SQLite) while its bulk import is fast: past PREDICT_ANSWER_MAX results, the
        finished tasks go to the background writer instead of into the answer."""
        cap = self.settings.predict_answer_max
        out: list[TaskOutcome] = []
        answered = 0
        for o in done:
            if o.succeeded and answered >= cap:
                self.writer.submit(_Late(project, scope, owner, adjust_one(learned, o), version))
                out.append(replace(o, status="late", result=None, reason="written_back",
                                   error=f"task {o.task_id}: done; written to Label Studio through its API"))
            else:
                answered += o.succeeded
                out.append(o)
        return out

    def _retake_marked(self, held: dict[int, str | None], project: int, scope: str, owner: str, version: str,
                       ttl: float) -> None:
        """Label Studio asks only for tasks it lacks: a `delivered` task it asks for again was not
        stored (its save failed and it retried), so it is ours again (the runner still has the
        outcome); a `written` one is checked with Label Studio first (a user may have deleted it)."""
        delivered = [t for t, h in held.items() if h == DELIVERED]
        written = [t for t, h in held.items() if h == WRITTEN]
        lacking: list[int] = []
        if written:
            api = self.api()
            try:
                present = api.tasks_holding(project, version, written) if api is not None else set(written)
            except Exception as exc:  # cannot tell: leave them alone (never twice)
                log.warning("one-click: cannot ask Label Studio about %d written tasks: %s", len(written), exc)
                present = set(written)
            lacking = [t for t in written if t not in present]
        for tid in self.claims.retake(scope, delivered + lacking, owner, ttl):
            held[tid] = None

    def _hand_off(self, tasks: Sequence[Mapping[str, Any]], running: list[int], unstarted: list[int], project: int,
                  scope: str, owner: str, version: str, spec, label_config: str | None) -> None:
        assert self.handoff is not None and self.leases is not None
        self.leases.hold(scope, owner, running)  # short and renewed from now on: a dead process's lapse
        by_id = {int(t["id"]): t for t in tasks}
        try:
            api = self.api()
            config = label_config or (api.project(project).get("label_config") if api is not None else "") or ""
            job_id = self.handoff.submit(self.claims, scope, project, version, config, api.base_url if api is not None else "",
                                         owner, [by_id[t] for t in unstarted], [by_id[t] for t in running])
        except Exception as exc:  # no queue: this process finishes what runs; the rest waits for a re-click
            log.error("one-click: cannot put the remainder of a click on the job queue (%s): %d tasks not started are "
                      "left for the next Retrieve predictions", exc, len(unstarted))
            self.claims.release(scope, unstarted, owner)
            return
        log.info("one-click: job %s on the RQ queue finishes %d tasks of project %s (%d still running here, "
                 "%d not started) and writes them to Label Studio", job_id, len(running) + len(unstarted), project,
                 len(running), len(unstarted))

    def run(self, tasks: Sequence[Mapping[str, Any]], spec, version: str, fetch: Fetch, *, deadline: float,
            project_field: Any = None, learned: LearnedState | None = None, label_config: str | None = None,
            ) -> list[TaskOutcome]:
        """`learned`: the review loop's state, applied to what is written back exactly as server.py
        applies it to the answer (the same regions whichever path a task takes)."""
        learned = learned or LearnedState()
        project = project_id(project_field, tasks)
        ids = [t.get("id") for t in tasks]
        usable = self.credentials.current() is not None and project is not None and all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids)
        self._announce(self.credentials.current() is not None)
        if not usable or project is None:
            return self.runner.run(tasks, spec, version, fetch, deadline=deadline)
        scope = scope_of(project, version)
        owner = f"{self._owner_base}:{uuid.uuid4().hex[:8]}"
        ttl = self.settings.predict_timeout + 120
        held = self.claims.acquire(scope, [int(i) for i in ids], owner, ttl)  # type: ignore[arg-type]
        self._retake_marked(held, project, scope, owner, version, ttl)
        mine = [t for t in tasks if held[int(t["id"])] is None]

        durable = self.durable()

        def on_late(outcome: TaskOutcome) -> None:
            if outcome.succeeded:
                self.writer.submit(_Late(project, scope, owner, adjust_one(learned, outcome), version))
            else:
                self.claims.release(scope, [int(outcome.task_id)], owner)
                if self.leases is not None:
                    self.leases.drop(scope, owner, [int(outcome.task_id)])
                log.warning("late task %s failed (%s): %s; not written", outcome.task_id, outcome.reason, outcome.error)

        done = self.runner.run(mine, spec, version, fetch, deadline=deadline, on_late=on_late,
                               cancel_unstarted=durable) if mine else []
        done = self._cap(done, project, scope, owner, version, learned)
        by_id = {o.task_id: o for o in done}
        delivered = [int(o.task_id) for o in done if o.succeeded]
        failed = [int(o.task_id) for o in done if o.status == "failed"]
        late = [int(o.task_id) for o in done if o.status == "late" and o.reason == "late"]  # running still
        capped = [int(o.task_id) for o in done if o.status == "late" and o.reason == "written_back"]
        unstarted = [int(o.task_id) for o in done if o.status == "late" and o.reason == "unstarted"]
        if delivered:
            self.claims.finish(scope, delivered, DELIVERED, DELIVERED_SECONDS)
            self.writer.quiet_for(0.3 * len(delivered) + 1.0)
        if failed:
            self.claims.release(scope, failed, owner)
        if durable and (late or capped or unstarted):
            # this process still writes the running and the capped ones; the job is their safety net
            self._hand_off(tasks, late + capped, unstarted, project, scope, owner, version, spec, label_config)
        elif late:
            # the background write holds them now, for as long as a task may take
            self.claims.renew(scope, late, owner, self.settings.predict_timeout * 2 + 600)
            log.info("one-click: %d tasks of project %s go on in the background and will be written to Label Studio",
                     len(late), project)
        out: list[TaskOutcome] = []
        for t in tasks:
            tid = int(t["id"])
            if tid in by_id:
                out.append(by_id[tid])
                continue
            holder = held[tid]
            note = ("already written to Label Studio" if holder in (WRITTEN, DELIVERED)
                    else "being predicted by a background job; it will be written to Label Studio")
            out.append(TaskOutcome(tid, "late", reason="claimed", error=f"task {tid}: {note}"))
            self.metrics.tasks.labels("claimed").inc()
        return out
