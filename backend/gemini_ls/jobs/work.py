"""One chunk of a job: claim its tasks, predict what is not in Label Studio yet, write it back.

`ChunkExecutor.execute` is what an RQ worker (or the in-process pool) runs. It never predicts a
task another owner holds, never writes a task that already holds the version in Label Studio, and
raises `TasksFailed` when a task failed, so RQ retries the chunk (tasks already written are skipped
at once: no Gemini call) and, out of retries, keeps it in its failed registry with the reasons.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from ..gemini.usage import recording
from ..labelconfig import parse_label_config
from ..labelstudio import LabelStudioApi, LabelStudioApiError, PredictionRecord, PredictionWriter
from ..review.learning import LearnedState, Learner
from .budget import Budget
from .claims import WRITTEN, WRITTEN_SECONDS, Claims, queued_owner, scope_of
from .records import JobStore

if TYPE_CHECKING:
    from ..pipeline import Pipeline

log = logging.getLogger("gemini_ls.jobs")


class TasksFailed(Exception):
    """Some tasks of a chunk failed: the message names each task and its reason."""

    def __init__(self, reasons: Mapping[int, str]) -> None:
        self.reasons = dict(reasons)
        lines = "; ".join(f"task {t}: {why}" for t, why in sorted(self.reasons.items()))
        super().__init__(f"{len(self.reasons)} task(s) failed: {lines}"[:4000])


class JobError(Exception):
    pass


@dataclass(frozen=True)
class ChunkResult:
    done: tuple[int, ...]
    predicted: int
    already: int
    elsewhere: Mapping[int, str]
    failed: Mapping[int, str]

    def as_dict(self) -> dict:
        return {"done": list(self.done), "predicted": self.predicted, "already": self.already,
                "elsewhere": {str(k): v for k, v in self.elsewhere.items()}, "failed": {str(k): v for k, v in self.failed.items()}}


class _Lease:
    """Renews this chunk's claims while it works, so only a dead owner's claims lapse."""

    def __init__(self, claims: Claims, scope: str, owner: str, ids: Sequence[int], ttl: float) -> None:
        self._args = (claims, scope, owner, list(ids), ttl)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claim-lease", daemon=True)

    def _run(self) -> None:
        claims, scope, owner, ids, ttl = self._args
        while not self._stop.wait(ttl / 3):
            try:
                claims.renew(scope, ids, owner, ttl)
            except (redis.RedisError, OSError) as exc:  # Redis blip: the next beat tries again
                log.warning("could not renew task claims: %s", exc)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class ChunkExecutor:
    """`learner`: the review loop's, so a chunk gets the same effective spec and model_version as a
    /predict answer for its tasks (None: nothing learned)."""

    def __init__(self, pipeline: Pipeline, learner: Learner | None, store: JobStore, claims: Claims,
                 api: LabelStudioApi | None, budget: Budget | None = None) -> None:
        self.pipeline = pipeline
        self.learner = learner
        self.settings = pipeline.settings
        self.store = store
        self.claims = claims
        self.api = api
        self.budget = budget  # the job's spend and --max-cost (None: not recorded)

    @property
    def lease_seconds(self) -> float:
        return max(6.0, 3 * self.settings.job_heartbeat)

    def execute(self, job_id: str, tasks: Sequence[Mapping[str, Any]], attempt_id: str = "local") -> ChunkResult:
        started = time.monotonic()
        phases: dict[str, float] = {}  # seconds per phase, logged per chunk (where a chunk's time goes)
        info = self.store.get(job_id)
        config = self.store.config(job_id)
        if info is None or config is None:
            raise JobError(f"job {job_id} is unknown (expired or another REDIS_PREFIX)")
        if self.api is None:
            raise JobError("no Label Studio credentials: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY for the worker")
        # with what the review loop learned for the project (thresholds, synonyms, few-shot examples):
        # the same effective spec and model_version as a /predict answer for these tasks (server.py);
        # the examples reach the plans through this version
        learned = self.learner.state(info.project) if self.learner is not None else LearnedState()
        spec = learned.applied(parse_label_config(config, self.settings.defaults))
        version = self.pipeline.model_version(spec)
        if version != info.model_version:
            raise JobError(f"this worker predicts model_version {version!r}, the job was made for {info.model_version!r} "
                           "(different GEMINI_MODEL / MODEL_VERSION_SUFFIX / API key, or the review loop's learned state changed?)")
        scope = scope_of(info.project, version)
        owner = f"job:{job_id}:{attempt_id}:{socket.gethostname()}:{os.getpid()}"
        ids = [int(t["id"]) for t in tasks]
        held = self._acquire(scope, ids, owner, job_id, info.handed_by)
        phases["claim"] = time.monotonic() - started
        # `written` is a hint: Label Studio's answer below decides whether such a task is done.
        # `delivered` is not retaken: Label Studio is storing that /predict answer right now (a
        # check against it could come too early and the task would be written twice).
        written = [i for i in ids if held[i] == WRITTEN]
        for tid in self.claims.retake(scope, written, owner, self.lease_seconds) if written else ():
            held[tid] = None
        mine = [i for i in ids if held[i] is None]
        elsewhere = {i: str(held[i]) for i in ids if held[i] is not None}
        self.store.mark_elsewhere(job_id, elsewhere)
        failed: dict[int, str] = {}
        predicted = already = 0
        with _Lease(self.claims, scope, owner, mine, self.lease_seconds):
            mark = time.monotonic()
            try:
                present = self.api.tasks_holding(info.project, version, mine)
            except LabelStudioApiError as exc:
                self.claims.release(scope, mine, owner)
                raise JobError(f"cannot ask Label Studio which tasks hold {version}: {exc}") from exc
            if present:
                self.claims.finish(scope, present, WRITTEN, WRITTEN_SECONDS)
                self.store.mark_done(job_id, present)
                already += len(present)
            todo = [t for t in tasks if int(t["id"]) in set(mine) - present]
            phases["check"] = time.monotonic() - mark
            mark = time.monotonic()
            records: list[PredictionRecord] = []
            reserved, stopped = self.budget.reserve(job_id, len(todo)) if (todo and self.budget is not None) else (0.0, None)
            if stopped is not None:  # --max-cost: these tasks stay undone (not failed) for a rerun with a higher cap
                log.warning("job %s: chunk of %d tasks not started: %s", job_id, len(todo), stopped)
                self.claims.release(scope, [int(t["id"]) for t in todo], owner)
                elsewhere = {**elsewhere, **{int(t["id"]): "not started: " + stopped for t in todo}}
                todo = []
            if todo:
                deadline = time.monotonic() + self.settings.job_timeout * 0.9
                with recording() as tally:
                    outcomes = self.pipeline.runner.run(todo, spec, version, self.pipeline.fetch, deadline=deadline)
                if self.budget is not None:
                    self.budget.settle(job_id, reserved, tally.snapshot(), len(todo))
                for outcome in outcomes:
                    tid = int(outcome.task_id)
                    if outcome.succeeded:
                        records.append(PredictionRecord(tid, outcome.result or (), version, outcome.score))
                    else:
                        failed[tid] = f"{outcome.reason or 'failed'}: {outcome.error or ''}"
            phases["predict"] = time.monotonic() - mark
            mark = time.monotonic()
            if records:
                # still ours since Label Studio said they lack the version: no second check needed
                kept = self.claims.renew(scope, [r.task_id for r in records], owner, self.lease_seconds)
                report = PredictionWriter(self.api, chunk=self.settings.writeback_chunk,
                                          attempts=self.settings.writeback_attempts).write(info.project, records, checked=kept)
                ok = [*report.written, *report.already]
                self.claims.finish(scope, ok, WRITTEN, WRITTEN_SECONDS)
                self.store.mark_done(job_id, ok)
                predicted += len(records)
                already += len(report.already)
                for tid, why in report.failed.items():
                    failed[tid] = f"writeback: {why}"
                self.pipeline.metrics.writeback.labels("written").inc(len(report.written))
                self.pipeline.metrics.writeback.labels("already").inc(len(report.already))
                self.pipeline.metrics.writeback.labels("failed").inc(len(report.failed))
            if failed:
                self.claims.release(scope, list(failed), owner)
                self.store.mark_failed(job_id, failed)
            phases["write"] = time.monotonic() - mark
        log.info("job %s: chunk of %d tasks in %.2f s (%s): %d predicted, %d already there, %d elsewhere, %d failed",
                 job_id, len(ids), time.monotonic() - started, ", ".join(f"{k} {v:.2f}" for k, v in phases.items()),
                 predicted, already, len(elsewhere), len(failed))
        done = tuple(i for i in ids if i not in failed and i not in elsewhere)
        result = ChunkResult(done, predicted, already, elsewhere, failed)
        self._end_if_finished(job_id, version)
        if failed:
            raise TasksFailed(failed)
        return result

    def _end_if_finished(self, job_id: str, version: str) -> None:
        """The job's last chunk: its few-shot context caches stop costing storage now (gemini/ctxcache.py)."""
        try:
            info = self.store.get(job_id)
        except (redis.RedisError, OSError) as exc:  # the caches end on their own TTL
            log.debug("job %s: not checked for its end: %s", job_id, exc)
            return
        if info is not None and info.finished:
            self.pipeline.end_of_job(version)

    def _acquire(self, scope: str, ids: list[int], owner: str, job_id: str, handed_by: str = "") -> dict[int, str | None]:
        """Claim. Two holders are waited for, then taken over when their claim lapses: an earlier
        attempt of this same job (its worker died), and the click that handed this job its
        remainder (its process keeps renewing while it finishes and writes its running tasks; a
        task it wrote turns `written`, which the check against Label Studio then confirms)."""
        held = self.claims.acquire(scope, ids, owner, self.lease_seconds)
        queued = queued_owner(job_id)

        def take_queued() -> None:
            waiting = [i for i, h in held.items() if h == queued]
            for tid in self.claims.transfer(scope, waiting, queued, owner, self.lease_seconds) if waiting else ():
                held[tid] = None

        take_queued()
        prefix = f"job:{job_id}:"
        patience = self.lease_seconds + 2 + (self.settings.predict_timeout + 120 if handed_by else 0)
        end = time.monotonic() + patience
        while time.monotonic() < end:
            stale = [i for i, h in held.items() if h is not None and h != owner and (h.startswith(prefix) or h == handed_by)]
            if not stale:
                break
            time.sleep(0.5)
            held.update(self.claims.acquire(scope, stale, owner, self.lease_seconds))
            take_queued()
        return held
