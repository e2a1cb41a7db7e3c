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

from ..images.lsauth import CredentialStore
from ..metrics import Metrics
from ..predict import BatchRunner, Fetch, TaskOutcome
from ..settings import Settings
from .claims import DELIVERED, DELIVERED_SECONDS, WRITTEN, WRITTEN_SECONDS, Claims, scope_of
from .writeback import LabelStudioApi, PredictionRecord, PredictionWriter

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


def make_writer(settings: Settings, api: LabelStudioApi) -> PredictionWriter:
    return PredictionWriter(api, chunk=settings.writeback_chunk, attempts=settings.writeback_attempts)


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
                 *, flush_seconds: float = 1.0, threads: int = 2) -> None:
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
                 credentials: CredentialStore) -> None:
        self.settings = settings
        self.metrics = metrics
        self.runner = runner
        self.claims = claims
        self.credentials = credentials
        self._owner_base = f"predict:{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._announced: bool | None = None
        self.writer = BackgroundWriter(settings, metrics, claims, self.api)

    def api(self) -> LabelStudioApi | None:
        auth = self.credentials.current()
        return LabelStudioApi(auth, timeout=self.settings.writeback_timeout) if auth is not None else None

    def status(self) -> dict:
        on = self.credentials.current() is not None
        return {
            "enabled": on,
            "mode": "late tasks written to Label Studio through its API" if on else
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
                self.writer.submit(_Late(project, scope, owner, o, version))
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

    def run(self, tasks: Sequence[Mapping[str, Any]], spec, version: str, fetch: Fetch, *, deadline: float,
            project_field: Any = None) -> list[TaskOutcome]:
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

        def on_late(outcome: TaskOutcome) -> None:
            if outcome.succeeded:
                self.writer.submit(_Late(project, scope, owner, outcome, version))
            else:
                self.claims.release(scope, [int(outcome.task_id)], owner)
                log.warning("late task %s failed (%s): %s; not written", outcome.task_id, outcome.reason, outcome.error)

        done = self.runner.run(mine, spec, version, fetch, deadline=deadline, on_late=on_late) if mine else []
        done = self._cap(done, project, scope, owner, version)
        by_id = {o.task_id: o for o in done}
        delivered = [int(o.task_id) for o in done if o.succeeded]
        failed = [int(o.task_id) for o in done if o.status == "failed"]
        late = [int(o.task_id) for o in done if o.status == "late" and o.reason != "written_back"]
        if delivered:
            self.claims.finish(scope, delivered, DELIVERED, DELIVERED_SECONDS)
            self.writer.quiet_for(0.3 * len(delivered) + 1.0)
        if failed:
            self.claims.release(scope, failed, owner)
        if late:
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
