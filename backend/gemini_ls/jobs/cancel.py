"""Cancel a job of any kind (`gemini-ls jobs cancel ID`, the page's Cancel): it is marked cancelled in
the one job store (state.py), what still runs for it is stopped, and its claims are released, so a
later click or `gemini-ls prelabel` takes its tasks at once instead of waiting for a lease to lapse.

    prelabel  its chunks no worker has started leave the RQ queue; the claims of its tasks waiting on
              the queue (a click's remainder, `job:{id}:queued`) are released. A chunk already
              running keeps its claims and finishes its tasks (at most JOB_CHUNK): released, they
              could be written twice, by it and by the click that took them (its write checks
              Label Studio, but not against a click still computing)
    batch     its Batch API jobs that have not ended are cancelled at Google; the claims of its
              owner `batch:{project}:{version}` on the tasks it sent are released (a running
              `prelabel --batch` sees the flag at its next poll and stops: nothing is resubmitted)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..settings import Settings
from .batchhold import batch_owner
from .claims import Claims, queued_owner, scope_of
from .records import BATCH
from .state import RedisJobStore

log = logging.getLogger("gemini_ls.jobs")


@dataclass(frozen=True)
class CancelReport:
    job: str
    kind: str
    chunks: int = 0  # RQ chunks taken off the queue
    batches: tuple[str, ...] = ()  # Batch API jobs cancelled
    released: int = 0  # tasks whose claim was given up


class ChunkQueue(Protocol):
    def cancel(self, rq_ids: Sequence[str]) -> int: ...
    def task_ids(self, rq_ids: Sequence[str]) -> list[int]: ...


class BatchApi(Protocol):
    """genai.Client().batches, as far as cancelling goes."""

    def cancel(self, *, name: str) -> Any: ...


def cancel_job(store: RedisJobStore, claims: Claims, job_id: str, *, queue: Callable[[], ChunkQueue],
               batch_api: Callable[[], BatchApi]) -> CancelReport | None:
    """None for an unknown job. `queue` / `batch_api` are made only when the job needs them (a
    Gemini client only when a Batch API job is still running)."""
    info = store.get(job_id)
    if info is None or not store.cancel(job_id):
        return None
    scope = scope_of(info.project, info.model_version)
    if info.kind == BATCH:
        api = batch_api() if any(b.active for b in info.batches) else None
        cancelled = []
        for record in info.batches:
            if record.active and api is not None:
                api.cancel(name=record.name)
                cancelled.append(record.name)
        sent = store.batch_state(job_id).sent() | set(info.failed)
        held = sorted(t for t in sent if t not in info.done)
        owner = batch_owner(info.project, info.model_version)
        mine = [t for t, h in claims.holders(scope, held).items() if h == owner] if held else []
        if mine:
            claims.release(scope, mine, owner)
        log.info("job %s cancelled: %d batch(es), %d claim(s) released", job_id, len(cancelled), len(mine))
        return CancelReport(job_id, BATCH, batches=tuple(cancelled), released=len(mine))
    rq_ids = store.rq_ids(job_id)
    chunks = queue() if rq_ids else None
    stopped = chunks.cancel(rq_ids) if chunks is not None else 0
    tasks = [t for t in (chunks.task_ids(rq_ids) if chunks is not None else []) if t not in info.done]
    owner = queued_owner(job_id)
    held = [t for t, h in claims.holders(scope, tasks).items() if h == owner] if tasks else []
    if held:
        claims.release(scope, held, owner)
    released = len(held)
    log.info("job %s cancelled: %d chunk(s) off the queue, %d claim(s) released", job_id, stopped, released)
    return CancelReport(job_id, info.kind, chunks=stopped, released=released)


@dataclass(frozen=True)
class _ClientBatches:
    client: Any  # the genai.Client itself: its HTTP client closes once the Client is collected

    def cancel(self, *, name: str) -> Any:
        return self.client.batches.cancel(name=name)


def batches_api(settings: Settings) -> BatchApi:
    from ..gemini.client import make_client

    return _ClientBatches(make_client(settings))


def cancel(settings: Settings, store: RedisJobStore, job_id: str) -> CancelReport | None:
    """`cancel_job` with this process's claims, RQ queue and Gemini client (each made on need)."""
    from .context import make_claims
    from .queue import RQJobQueue

    return cancel_job(store, make_claims(settings), job_id, queue=lambda: RQJobQueue(settings),
                      batch_api=lambda: batches_api(settings))
