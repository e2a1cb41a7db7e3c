"""Every job the backend knows, as one typed list: what the page and its JSON show (docs/page.md).

One store holds every job (jobs/state.py: `gemini-ls prelabel`, the remainders of a "Retrieve
predictions" click, Batch API jobs; without REDIS_URL this process's, memstore.py); this adapter
only maps its records onto the page's words. A
list is read through the store's `overview` (counts, SCARD/HLEN, instead of the task sets, in one
pipeline), so an open page costs the workers nothing and 100 jobs stay cheap; Cancel is
jobs/cancel.py's, the same as `gemini-ls jobs cancel`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..gemini.pricing import cost_by_model
from ..jobs.memstore import MemoryJobStore, process_store
from ..jobs.records import BATCH, STOPPED, WAITING, JobCounts, JobInfo, counts_of
from ..jobs.state import RedisJobStore
from ..settings import Settings

# The states the page shows (docs/page.md); the store's own words map onto them here.
STATES = ("queued", "running", WAITING, "done", "cancelled", STOPPED, "failed")
FAILURES_SHOWN = 50  # a job's failures listed in its detail: the first ones, the count says the rest


@dataclass(frozen=True)
class JobView:
    id: str
    kind: str  # "prelabel" (`gemini-ls prelabel` and click remainders, on RQ) | "batch" (Batch API)
    project: str
    model_version: str
    state: str  # one of STATES
    total: int
    done: int
    failed: int
    skipped: int  # written by another holder (a click, another job): counted, not ours
    created: float | None
    rate_per_min: float | None  # tasks finished per minute since the job started (None: unknown)
    eta_seconds: float | None
    models: tuple[str, ...]
    tokens: int | None  # None: this kind of job does not record its tokens
    cost_usd: float | None  # None: no price known or not recorded
    failed_by_reason: Mapping[str, int] = field(default_factory=dict)
    failures: Mapping[str, str] = field(default_factory=dict)  # task id -> reason (detail only)
    can_cancel: bool = False
    can_retry: bool = False  # a finished or cancelled prelabel job with failed tasks (web/actions.py)
    first_failure: str | None = None  # one failure's message (the smallest), so the list shows what went wrong
    batches: tuple[Mapping[str, Any], ...] = ()  # a batch job's Batch API jobs: name, state, model, requests, source

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"] = list(self.models)
        out["failed_by_reason"] = dict(self.failed_by_reason)
        out["failures"] = dict(self.failures)
        out["batches"] = [dict(b) for b in self.batches]
        return out


def _first(failed: Mapping[Any, str]) -> str | None:
    return min(failed.values())[:300] if failed else None


def _pace(done: int, total: int, created: float | None, running: bool, now: float) -> tuple[float | None, float | None]:
    if created is None or not running or done <= 0 or now <= created:
        return None, None
    per_second = done / (now - created)
    return per_second * 60, max(total - done, 0) / per_second


def _state(job: JobCounts) -> str:
    state = job.state
    if state == "running" and job.done + len(job.failed) + job.elsewhere == 0 and job.kind != BATCH:
        return "queued"
    return "done" if state == "finished" else state


def job_view(settings: Settings, job: JobCounts, *, now: float, detail: bool = False) -> JobView:
    """One record of the store as the page shows it (`detail`: with its first failures listed)."""
    state = _state(job)
    progressed = job.done + len(job.failed) + job.elsewhere
    rate, eta = _pace(progressed, job.total, job.created or None, state == "running", now)
    shown = dict(sorted(job.failed.items())[:FAILURES_SHOWN]) if detail else {}
    tokens: int | None = None
    cost: float | None = None
    models = tuple(sorted({b.model for b in job.batches if b.model} | set(job.usage)))
    if job.kind == BATCH or job.usage:  # a prelabel job's chunks add their usage as they settle (jobs/budget.py)
        tokens = sum(t.prompt + t.output + t.thoughts for t in job.usage.values())
        costs = cost_by_model(job.usage, settings.price_overrides, settings.batch_discount)
        cost = costs.batch_usd if job.kind == BATCH else costs.sync_usd
    reasons = job.failed_by_reason()
    if state == STOPPED:  # --max-cost's reason is shown with the failures
        reasons = {**reasons, job.stopped: 0}
    return JobView(id=job.id, kind=job.kind, project=job.project, model_version=job.model_version, state=state,
                   total=job.total, done=job.done, failed=len(job.failed), skipped=job.elsewhere,
                   created=job.created or None, rate_per_min=rate, eta_seconds=eta, models=models, tokens=tokens,
                   cost_usd=cost, failed_by_reason=reasons, failures=shown,
                   can_cancel=state in ("queued", "running", WAITING),
                   can_retry=bool(job.failed) and job.kind != BATCH and state in ("failed", "cancelled", STOPPED),
                   first_failure=_first(job.failed),
                   batches=tuple({"name": b.name, "state": b.state, "model": b.model, "requests": b.requests,
                                  "source": b.source} for b in job.batches))


@dataclass(frozen=True)
class JobSource:
    """Where the jobs are read from: the shared Redis (every replica's and worker's jobs) or, without
    REDIS_URL, this process's own job store (memstore.process_store: the remainders of its clicks,
    jobs/remainders.py), which nothing else shares and a restart empties. Those can be neither
    cancelled nor retried from the page (both go through the shared queue)."""

    settings: Settings
    client: Any = None  # the `request` profile's client (redisconn.py): a page never waits on Redis
    local: MemoryJobStore | None = None  # without REDIS_URL: this process's jobs

    @classmethod
    def from_settings(cls, settings: Settings) -> JobSource:
        if not settings.redis_url:
            return cls(settings, local=process_store())
        from .. import redisconn

        return cls(settings, redisconn.client(settings.redis_url, redisconn.REQUEST))

    def _store(self) -> RedisJobStore:
        return RedisJobStore(self.client, self.settings.redis_prefix)

    def _local(self, info: JobInfo, now: float, detail: bool = False) -> JobView:
        return replace(job_view(self.settings, counts_of(info), now=now, detail=detail), can_cancel=False, can_retry=False)

    def list_jobs(self, limit: int = 100, now: float | None = None) -> list[JobView]:
        now = time.time() if now is None else now
        if self.client is None:
            return [self._local(j, now) for j in self.local.recent(limit)] if self.local is not None else []
        return [job_view(self.settings, j, now=now) for j in self._store().overview(limit)]

    def get_job(self, job_id: str, now: float | None = None) -> JobView | None:
        now = time.time() if now is None else now
        if self.client is None:
            found = self.local.get(job_id) if self.local is not None else None
            return self._local(found, now, detail=True) if found is not None else None
        info = self._store().get(job_id)  # reads only: asking about an id never registers it
        if info is None:
            return None
        return job_view(self.settings, counts_of(info), now=now, detail=True)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job of any kind, exactly as `gemini-ls jobs cancel ID` (jobs/cancel.py): marked
        cancelled, its queued chunks off the RQ queue or its running Batch API jobs cancelled, its
        claims released. False for an unknown job."""
        if self.client is None:
            return False
        from ..jobs.cancel import cancel

        return cancel(self.settings, self._store(), job_id) is not None
