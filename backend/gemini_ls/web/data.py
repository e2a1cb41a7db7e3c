"""Every job the backend knows, as one typed list: the single place the page, its JSON and the CLI
read jobs from (docs/page.md).

Two stores hold jobs today: jobs/state.py (`gemini-ls prelabel` and the remainders of a
"Retrieve predictions" click, run by the RQ workers) and batch/store.py (Batch API jobs). This
adapter stays thin on purpose: batch jobs are being merged into the jobs/ store, after which
`_batch_jobs` goes away. It only READS, with counts (SCARD/HLEN) instead of the task sets, in one
pipeline per store, so an open page costs the workers nothing and 100 jobs stay cheap.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..batch.store import _record as batch_record  # the store's own parsing, so the two never disagree
from ..batch.store import _usage_from as usage_from
from ..batch.store import parse_job_id
from ..gemini.pricing import cost_by_model
from ..jobs.state import JobInfo
from ..settings import Settings

# The states the page shows (docs/page.md); the stores' own words map onto them here.
STATES = ("queued", "running", "waiting for the Batch API", "done", "cancelled", "failed")
FAILURES_SHOWN = 50  # a job's failures listed in its detail: the first ones, the count says the rest


@dataclass(frozen=True)
class JobView:
    id: str
    kind: str  # "prelabel" (jobs/: `gemini-ls prelabel` and click remainders) | "batch" (Batch API)
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

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"] = list(self.models)
        out["failed_by_reason"] = dict(self.failed_by_reason)
        out["failures"] = dict(self.failures)
        return out


def _reasons(failed: Mapping[Any, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for why in failed.values():
        key = why.split(":", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


def _first(failed: Mapping[Any, str]) -> str | None:
    return min(failed.values())[:300] if failed else None


def _pace(done: int, total: int, created: float | None, running: bool, now: float) -> tuple[float | None, float | None]:
    if created is None or not running or done <= 0 or now <= created:
        return None, None
    per_second = done / (now - created)
    return per_second * 60, max(total - done, 0) / per_second


def prelabel_view(info: JobInfo, *, now: float, detail: bool = False, cancelled: bool = False) -> JobView:
    """A jobs/state job read in full (the detail view)."""
    return _prelabel(info.id, info.project, info.model_version, info.total, info.created, len(info.done),
                     dict(info.failed), len(info.elsewhere), now=now, detail=detail, cancelled=cancelled)


def _prelabel(job_id: str, project: Any, version: str, total: int, created: float, done: int,
              failed: Mapping[Any, str], skipped: int, *, now: float, detail: bool, cancelled: bool = False) -> JobView:
    n_failed = len(failed)
    finished = done + n_failed + skipped >= total
    state = ("failed" if n_failed else "done") if finished else ("queued" if done + n_failed + skipped == 0 else "running")
    if cancelled and not finished:
        state = "cancelled"
    rate, eta = _pace(done + n_failed + skipped, total, created, state == "running", now)
    shown = dict(sorted(((str(k), v) for k, v in failed.items()), key=lambda kv: kv[0])[:FAILURES_SHOWN]) if detail else {}
    return JobView(id=job_id, kind="prelabel", project=str(project), model_version=version, state=state, total=total,
                   done=done, failed=n_failed, skipped=skipped, created=created, rate_per_min=rate, eta_seconds=eta,
                   models=(), tokens=None, cost_usd=None, failed_by_reason=_reasons(failed), failures=shown,
                   can_cancel=state in ("queued", "running"), can_retry=n_failed > 0 and state in ("failed", "cancelled"),
                   first_failure=_first(failed))


def _prelabel_jobs(client: Any, prefix: str, limit: int, now: float) -> list[JobView]:
    """jobs/state.py's keys (its docstring): the hash plus SCARD/HLEN of the sets, in one round trip,
    and the failure reasons (short hash values) for the per-reason counts."""
    ids = [x.decode() if isinstance(x, bytes) else x for x in client.zrevrange(f"{prefix}jobs", 0, limit - 1)]
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        k = f"{prefix}job:{job_id}"
        pipe.hgetall(k)
        pipe.scard(k + ":done")
        pipe.hvals(k + ":failed")
        pipe.hlen(k + ":elsewhere")
    raw = pipe.execute()
    out = []
    for i, job_id in enumerate(ids):
        meta, done, failed, elsewhere = raw[4 * i : 4 * i + 4]
        if not meta:
            continue
        m = {_s(k): _s(v) for k, v in meta.items()}
        reasons = {n: _s(v) for n, v in enumerate(failed)}
        out.append(_prelabel(job_id, m.get("project", "?"), m.get("model_version", ""), int(m.get("total", 0)),
                             float(m.get("created", 0)), int(done), reasons, int(elsewhere), now=now, detail=False,
                             cancelled=m.get("cancelled") == "1"))
    return out


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_BATCH_READS = 7  # commands per batch job in `_batch_jobs`' pipeline, in `_batch_view`'s order


def _queue_batch_reads(pipe: Any, key: str) -> None:
    """batch/store.py's keys (its docstring), read only: BatchStore() itself registers its job id
    (SADD), which a page must not do, and would take one round trip per read."""
    pipe.hlen(key + "meta")  # one entry per task submitted
    pipe.scard(key + "written")
    pipe.hgetall(key + "failed")
    pipe.hgetall(key + "batches")
    pipe.hgetall(key + "usage")
    pipe.exists(key + "cancelled")
    pipe.get(key + "submitting")


def _batch_view(settings: Settings, job: str, replies: list[Any], *, detail: bool) -> JobView | None:
    parsed = parse_job_id(job)
    if parsed is None:
        return None
    meta, written, failed, raw_batches, raw_usage, cancelled, submitting = replies
    batches = [batch_record(name, value) for name, value in sorted(raw_batches.items())]
    usage = usage_from(raw_usage)
    cost = cost_by_model(usage, settings.price_overrides, settings.batch_discount)
    if cancelled:
        state = "cancelled"
    elif any(b.active for b in batches) or submitting:
        state = "waiting for the Batch API"
    else:
        state = "failed" if failed and not written else "done"
    shown = dict(sorted(failed.items())[:FAILURES_SHOWN]) if detail else {}
    return JobView(id=job, kind="batch", project=parsed[0], model_version=parsed[1], state=state,
                   total=max(int(meta), int(written) + len(failed)), done=int(written), failed=len(failed), skipped=0,
                   created=None, rate_per_min=None, eta_seconds=None,
                   models=tuple(sorted({b.model for b in batches if b.model} | set(usage))),
                   tokens=sum(t.prompt + t.output + t.thoughts for t in usage.values()), cost_usd=cost.batch_usd,
                   failed_by_reason=_reasons(failed), failures=shown, can_cancel=state == "waiting for the Batch API",
                   first_failure=_first(failed))


def _batch_jobs(settings: Settings, client: Any, ids: list[str] | None = None, *, detail: bool = False) -> list[JobView]:
    prefix = settings.redis_prefix
    ids = sorted(client.smembers(f"{prefix}batch:jobs")) if ids is None else ids
    pipe = client.pipeline(transaction=False)
    for job in ids:
        _queue_batch_reads(pipe, f"{prefix}{job}:")
    replies = pipe.execute() if ids else []
    views = (_batch_view(settings, job, replies[_BATCH_READS * i : _BATCH_READS * (i + 1)], detail=detail) for i, job in enumerate(ids))
    return [v for v in views if v is not None]


@dataclass(frozen=True)
class JobSource:
    """Where the jobs are read from: the shared Redis (every replica's and worker's jobs) or, without
    REDIS_URL, nothing shared: this process keeps no job list of its own (its click remainders run
    in its pool and are answered on the next Retrieve predictions)."""

    settings: Settings
    client: Any = None  # bytes replies (jobs/state) ...
    text_client: Any = None  # ... and str replies (batch/store): each store's own decoding

    @classmethod
    def from_settings(cls, settings: Settings) -> JobSource:
        if not settings.redis_url:
            return cls(settings)
        from .. import redisconn

        return cls(settings, redisconn.client(settings.redis_url, redisconn.REQUEST),
                   redisconn.client(settings.redis_url, redisconn.REQUEST_TEXT))

    def list_jobs(self, limit: int = 100, now: float | None = None) -> list[JobView]:
        if self.client is None:
            return []
        now = time.time() if now is None else now
        return _prelabel_jobs(self.client, self.settings.redis_prefix, limit, now) + _batch_jobs(self.settings, self.text_client)

    def get_job(self, job_id: str, now: float | None = None) -> JobView | None:
        if self.client is None:
            return None
        if parse_job_id(job_id) is not None:
            if not self._known_batch(job_id):
                return None
            found = _batch_jobs(self.settings, self.text_client, [job_id], detail=True)
            return found[0] if found else None
        from ..jobs.state import RedisJobStore

        info = RedisJobStore(self.client, self.settings.redis_prefix).get(job_id)
        if info is None:
            return None
        cancelled = self.client.hget(f"{self.settings.redis_prefix}job:{job_id}", "cancelled") == b"1"
        return prelabel_view(info, now=time.time() if now is None else now, detail=True, cancelled=cancelled)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job. A prelabel job: marked cancelled and its chunks no worker has started taken
        off the RQ queue (a running chunk finishes, at most JOB_CHUNK tasks). A Batch API job: exactly
        as `gemini-ls jobs cancel ID` (the flag, so nothing is resubmitted, and its active batches at
        Google). False for an unknown job."""
        if self.client is None:
            return False
        if parse_job_id(job_id) is None:
            from ..jobs.queue import RQJobQueue
            from ..jobs.state import RedisJobStore

            store = RedisJobStore(self.client, self.settings.redis_prefix)
            if not store.cancel(job_id):
                return False
            RQJobQueue(self.settings, self.client).cancel(store.rq_ids(job_id))
            return True
        if not self._known_batch(job_id):
            return False
        import argparse

        from ..batch import cli as batch_cli

        return batch_cli.jobs(argparse.Namespace(words=["cancel", job_id]), self.settings) == 0

    def _known_batch(self, job_id: str) -> bool:
        # checked before a store is built: BatchStore() registers its job id (SADD), and a page
        # must not add the ids it is asked about
        return bool(self.text_client.sismember(f"{self.settings.redis_prefix}batch:jobs", job_id))
