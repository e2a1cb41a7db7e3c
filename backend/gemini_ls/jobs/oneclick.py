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
process died, their lease lapses and the job predicts and writes them itself. When the queue cannot
take the remainder (Redis stopped answering after the click claimed its tasks), this process puts the
not-started tasks back on its own pool and writes them too, as without a queue.

Without Label Studio credentials (LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY, or /setup's) there is no
way to write, so late tasks fall back to the re-run contract: kept in memory and served on the next
click. That is said once in the log and in /health.

The background writer and the leases are latewriter.py; this module finishes the click.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import redis

from ..labelstudio import CredentialStore, LabelStudioApi
from ..metrics import Metrics
from ..predict import Fetch, TaskOutcome
from ..selectionrunner import SelectionRunner
from ..settings import Settings
from .batchhold import is_batch_owner
from .claims import DELIVERED, DELIVERED_SECONDS, WRITTEN, Claims, queued_owner, scope_of
from .latewriter import BackgroundWriter, LateTask, Leases
from .records import JobStore
from .remainders import Remainders

if TYPE_CHECKING:
    from .queue import JobQueue

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


HANDOFF_ROUNDS = 8  # rounds of GEMINI_CONCURRENCY calls per chunk of a click's remainder


def handoff_chunk(settings: Settings) -> int:
    """Tasks per RQ chunk of a click's remainder. A chunk's fixed cost (claims, the check with
    Label Studio, its import, the last calls' tail; ~0.6 s on SQLite) is paid once per chunk while
    the worker's pool waits: at JOB_CHUNK=16 with concurrency 8 (two rounds, ~2 s) that was a quarter
    of the remainder's time. Eight rounds per chunk bring it under a tenth."""
    return max(settings.job_chunk, HANDOFF_ROUNDS * settings.concurrency)


class Handoff:
    """Puts a click's remainder on the RQ queue as one job (see the module docstring)."""

    def __init__(self, settings: Settings, store: JobStore, queue: JobQueue) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue

    def submit(self, claims: Claims, scope: str, project: int, version: str, label_config: str, ls_url: str, owner: str,
               first: Sequence[Mapping[str, Any]], running: Sequence[Mapping[str, Any]]) -> str:
        """`first`: tasks not started, whose claims go to the job right away (so a second click
        leaves them to it); `running`: tasks this process finishes, the job waits for them."""
        from .records import JobInfo, new_job_id

        info = JobInfo(id=new_job_id(), project=project, model_version=version, total=len(first) + len(running),
                       created=time.time(), ls_url=ls_url, handed_by=owner)
        self.store.create(info, label_config)
        s = self.settings
        queued = queued_owner(info.id)
        moved = claims.transfer(scope, [int(t["id"]) for t in first], owner, queued,
                                max(3600.0, s.job_timeout * (s.job_retries + 1)))
        first = [t for t in first if int(t["id"]) in moved]
        size = handoff_chunk(self.settings)
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


class OneClick:
    """Runs a /predict selection through the SelectionRunner with claims and background write-back."""

    def __init__(self, settings: Settings, metrics: Metrics, runner: SelectionRunner, claims: Claims,
                 credentials: CredentialStore, handoff: Handoff | None = None, remainders: Remainders | None = None) -> None:
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
        # without a queue, a click's remainder is a job of this process's store (remainders.py), for its page
        self.remainders = remainders
        on_result = (lambda item, failure: remainders.record(item.owner, int(item.outcome.task_id), failure)) \
            if remainders is not None else None
        self.writer = BackgroundWriter(settings, metrics, claims, self.api, leases=self.leases, on_result=on_result)

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

    def _cap(self, done: list[TaskOutcome], project: int, scope: str, owner: str, version: str) -> list[TaskOutcome]:
        """Label Studio stores a /predict answer's predictions one by one through its serializer
        (~0.3 s each on SQLite) while its bulk import is fast: past PREDICT_ANSWER_MAX results, the
        finished tasks go to the background writer instead of into the answer."""
        cap = self.settings.predict_answer_max
        out: list[TaskOutcome] = []
        answered = 0
        for o in done:
            if o.succeeded and answered >= cap:
                self.writer.submit(LateTask(project, scope, owner, o, version))
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
                  scope: str, owner: str, version: str, spec, label_config: str | None) -> bool:
        """False when the queue could not take the remainder (Redis away, its breaker open): the
        caller then finishes the tasks not started in this process, as without a queue."""
        assert self.handoff is not None and self.leases is not None
        by_id = {int(t["id"]): t for t in tasks}
        try:
            self.leases.hold(scope, owner, running)  # short and renewed from now on: a dead process's lapse
            api = self.api()
            config = label_config or (api.project(project).get("label_config") if api is not None else "") or ""
            job_id = self.handoff.submit(self.claims, scope, project, version, config, api.base_url if api is not None else "",
                                         owner, [by_id[t] for t in unstarted], [by_id[t] for t in running])
        except Exception as exc:  # no queue: this process finishes and writes the whole remainder itself
            log.error("one-click: cannot put the remainder of a click on the job queue (%s: %s): this process finishes "
                      "its %d tasks not started too and writes them, as without a queue", type(exc).__name__, exc,
                      len(unstarted))
            return False
        log.info("one-click: job %s on the RQ queue finishes %d tasks of project %s (%d still running here, "
                 "%d not started) and writes them to Label Studio", job_id, len(running) + len(unstarted), project,
                 len(running), len(unstarted))
        return True

    def run(self, tasks: Sequence[Mapping[str, Any]], spec, version: str, fetch: Fetch, *, deadline: float,
            project_field: Any = None, label_config: str | None = None,
            ) -> list[TaskOutcome]:
        """`spec`: the effective one (the review loop's learned state in it), so what is written back
        and what is answered are the same regions whichever path a task takes."""
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
        try:
            held = self.claims.acquire(scope, [int(i) for i in ids], owner, ttl)  # type: ignore[arg-type]
            self._retake_marked(held, project, scope, owner, version, ttl)
        except (redis.RedisError, OSError) as exc:  # Redis away (or its breaker open): as without write-back
            log.warning("one-click: task claims unavailable (%s: %s); this click runs without write-back, late tasks are "
                        "kept for the next Retrieve predictions", type(exc).__name__, exc)
            return self.runner.run(tasks, spec, version, fetch, deadline=deadline)
        mine = [t for t in tasks if held[int(t["id"])] is None]

        durable = self.durable()
        recorded = self.remainders if not durable else None
        if recorded is not None:
            recorded.begin(owner)

        def on_late(outcome: TaskOutcome) -> None:
            if outcome.succeeded:
                self.writer.submit(LateTask(project, scope, owner, outcome, version))
            else:
                if recorded is not None:
                    recorded.record(owner, int(outcome.task_id), f"{outcome.reason or 'failed'}: {outcome.error or ''}")
                self.claims.release(scope, [int(outcome.task_id)], owner)
                if self.leases is not None:
                    self.leases.drop(scope, owner, [int(outcome.task_id)])
                log.warning("late task %s failed (%s): %s; not written", outcome.task_id, outcome.reason, outcome.error)

        done = self.runner.run(mine, spec, version, fetch, deadline=deadline, on_late=on_late,
                               cancel_unstarted=durable) if mine else []
        done = self._cap(done, project, scope, owner, version)
        by_id = {o.task_id: o for o in done}
        delivered = [int(o.task_id) for o in done if o.succeeded]
        failed = [int(o.task_id) for o in done if o.status == "failed"]
        late = [int(o.task_id) for o in done if o.status == "late" and o.reason == "late"]  # running still
        capped = [int(o.task_id) for o in done if o.status == "late" and o.reason == "written_back"]
        unstarted = [int(o.task_id) for o in done if o.status == "late" and o.reason == "unstarted"]
        if delivered:
            self.writer.quiet_for(0.3 * len(delivered) + 1.0)
        try:
            if delivered:
                self.claims.finish(scope, delivered, DELIVERED, DELIVERED_SECONDS)
            if failed:
                self.claims.release(scope, failed, owner)
        except (redis.RedisError, OSError) as exc:  # the answer goes out anyway; the claims lapse by their lease
            log.warning("one-click: claims of project %s not updated (%s: %s); they lapse by themselves",
                        project, type(exc).__name__, exc)
        # this process still writes the running and the capped ones; the job is their safety net
        if durable and (late or capped or unstarted) and not self._hand_off(
                tasks, late + capped, unstarted, project, scope, owner, version, spec, label_config):
            # their claims are still ours (or lapse, Redis being away): back on this process's pool,
            # written like a running late task. Released instead, a re-click would find them held by
            # this click until the claims lapse, and nobody would predict them meanwhile.
            by_task = {int(t["id"]): t for t in tasks}
            for o in self.runner.run([by_task[t] for t in unstarted], spec, version, fetch, deadline=time.monotonic(),
                                     on_late=on_late):
                if o.status != "late":  # done before the handler was attached (cached, or failed at once)
                    on_late(o)
            late = late + unstarted
        elif durable:
            late = []  # the job holds them
        if recorded is not None:
            recorded.open(owner, project, version, late + capped + unstarted, label_config or "")
        if late:
            try:  # the background write holds them now, for as long as a task may take
                self.claims.renew(scope, late, owner, self.settings.predict_timeout * 2 + 600)
            except (redis.RedisError, OSError) as exc:
                log.warning("one-click: claims of project %s not renewed (%s: %s); the writer checks Label Studio first",
                            project, type(exc).__name__, exc)
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
                    else f"held by the Batch API job {holder}; it writes it to Label Studio when its batch ends"
                    if is_batch_owner(holder) else "being predicted by a background job; it will be written to Label Studio")
            out.append(TaskOutcome(tid, "late", reason="claimed", error=f"task {tid}: {note}"))
            self.metrics.tasks.labels("claimed").inc()
        batch_held = sorted({str(h) for h in held.values() if is_batch_owner(h)})
        if batch_held:
            log.info("one-click: %d tasks of project %s are held by Batch API job(s) %s; left to them",
                     sum(1 for h in held.values() if is_batch_owner(h)), project, ", ".join(batch_held))
        return out
