"""The background write-back of a click's late tasks, and the short leases on the tasks it holds.

`BackgroundWriter` groups the tasks a /predict answered without (they finished after
PREDICT_TIMEOUT, or past PREDICT_ANSWER_MAX) into chunks and posts them to Label Studio through its
API; `Leases` keeps this process's claims on them alive while it does, so they lapse soon after the
process dies and a job can take them over (the module docstring of oneclick.py has the whole story).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from ..labelstudio import LabelStudioApi, PredictionRecord, PredictionWriter
from ..metrics import Metrics
from ..predict import TaskOutcome
from ..settings import Settings
from .claims import WRITTEN, WRITTEN_SECONDS, Claims

log = logging.getLogger("gemini_ls.jobs")


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
                except (redis.RedisError, OSError) as exc:  # a Redis blip: the next round tries again
                    log.warning("one-click: could not renew %d task claims: %s", len(ids), exc)
                    continue
                self.drop(scope, owner, [t for t in ids if t not in kept])  # written or lost meanwhile



@dataclass(frozen=True)
class LateTask:
    """A finished task its /predict answer went without, waiting to be written."""

    project: int
    scope: str
    owner: str
    outcome: TaskOutcome
    model_version: str


class BackgroundWriter:
    """Threads that group finished late tasks into chunks and write them (one set per process).

    Two writers: while one waits for Label Studio (the check, then the POST), the other fills its
    next chunk; claims keep them from ever writing the same task."""

    def __init__(self, settings: Settings, metrics: Metrics, claims: Claims, api_for: Callable[[], LabelStudioApi | None],
                 *, flush_seconds: float = 1.0, threads: int = 2, leases: Leases | None = None,
                 on_result: Callable[[LateTask, str | None], None] | None = None) -> None:
        self.leases = leases
        self.on_result = on_result  # each task's end: None written (or already there), else why not (remainders.py)
        self.settings = settings
        self.metrics = metrics
        self.claims = claims
        self._api_for = api_for
        self._flush_seconds = flush_seconds
        self._queue: queue.Queue[LateTask] = queue.Queue()
        self._pending = 0
        self._quiet_until = 0.0
        self._lock = threading.Lock()
        for i in range(threads):
            threading.Thread(target=self._loop, name=f"write-back-{i}", daemon=True).start()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def submit(self, item: LateTask) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put(item)

    def _loop(self) -> None:
        while True:
            chunk = [self._queue.get()]
            end = time.monotonic() + self._flush_seconds
            while len(chunk) < self.settings.writeback_chunk:
                try:
                    chunk.append(self._queue.get(timeout=max(0.0, end - time.monotonic())))
                except queue.Empty:
                    break
            try:
                self._write(chunk)
            except Exception as exc:  # the writer thread must survive anything
                log.exception("write-back: unexpected error")
                for item in chunk:  # a task already marked written stays so (the store keeps done over failed)
                    self._result(item, f"write_back: {type(exc).__name__}")
            if self.leases is not None:
                for item in chunk:
                    self.leases.drop(item.scope, item.owner, [int(item.outcome.task_id)])
            with self._lock:
                self._pending -= len(chunk)

    def quiet_for(self, seconds: float) -> None:
        """Label Studio is storing a /predict answer now: on SQLite our imports would fight it for
        the database lock (and its retry middleware re-runs the whole /predict), so hold off."""
        with self._lock:
            self._quiet_until = max(self._quiet_until, time.monotonic() + min(30.0, seconds))

    def _result(self, item: LateTask, failure: str | None) -> None:
        if self.on_result is not None:
            self.on_result(item, failure)

    def _write(self, chunk: list[LateTask]) -> None:
        with self._lock:
            hold = self._quiet_until - time.monotonic()
        if hold > 0:
            time.sleep(hold)
        by_project: dict[int, list[LateTask]] = {}
        for item in chunk:
            by_project.setdefault(item.project, []).append(item)
        api = self._api_for()
        for project, items in by_project.items():
            if api is None:
                for item in items:
                    self.claims.release(item.scope, [int(item.outcome.task_id)], item.owner)
                log.error("write-back: no Label Studio credentials any more; %d late tasks of project %s were not written "
                          "(the next Retrieve predictions fills them)", len(items), project)
                for item in items:
                    self._result(item, "write_back: no Label Studio credentials")
                self.metrics.writeback.labels("failed").inc(len(items))
                continue
            records = [
                PredictionRecord(int(i.outcome.task_id), i.outcome.result or (), i.model_version, i.outcome.score) for i in items
            ]
            report = make_writer(self.settings, api).write(project, records)
            by_task = {int(i.outcome.task_id): i for i in items}
            marks = _Marks(self.claims)
            for outcome, tids in (("written", report.written), ("already", report.already)):
                self.metrics.writeback.labels(outcome).inc(len(tids))
                for tid in tids:
                    marks.finish(by_task[tid].scope, tid)
                    self._result(by_task[tid], None)
            for tid, why in report.failed.items():
                marks.release(by_task[tid].scope, tid, by_task[tid].owner)
                self.metrics.writeback.labels("failed").inc()
                log.error("write-back: task %s of project %s not written: %s", tid, project, why)
                self._result(by_task[tid], f"write_back: {why}")
            marks.report(project)
            log.info("write-back to project %s: %d written, %d already there, %d failed",
                     project, len(report.written), len(report.already), len(report.failed))


class _Marks:
    """The claims' bookkeeping after a write, best effort: the write is done (Label Studio is the
    truth, and every writer asks it first), so a Redis that does not answer must not cost the rest
    of the batch its marks, its metrics and its log line. Unmarked claims lapse by their lease."""

    def __init__(self, claims: Claims) -> None:
        self.claims = claims
        self.missed = 0
        self.error = ""

    def _try(self, call: Callable[[], object]) -> None:
        try:
            call()
        except (redis.RedisError, OSError) as exc:
            self.missed += 1
            self.error = f"{type(exc).__name__}: {exc}"

    def finish(self, scope: str, tid: int) -> None:
        self._try(lambda: self.claims.finish(scope, [tid], WRITTEN, WRITTEN_SECONDS))

    def release(self, scope: str, tid: int, owner: str) -> None:
        self._try(lambda: self.claims.release(scope, [tid], owner))

    def report(self, project: int) -> None:
        if self.missed:
            log.warning("write-back to project %s: %d task claims not updated (%s); they lapse by themselves",
                        project, self.missed, self.error)
