"""The page's job actions besides cancel (docs/page.md "Actions"): retry a job's failed tasks.

"Retry failed tasks" makes a NEW prelabel job of exactly the failed tasks of a finished job and puts
its chunks on the one jobs/ RQ queue, as `gemini-ls prelabel` does: the tasks are read from Label
Studio as they are now (an image fixed since is used), the label config is the old job's, and the
model_version is derived by the server's own derivation (with the review loop's learned state), so
a worker accepts the chunks. The old job keeps its record (its failures stay visible); the new one
is listed on the page like any other job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from ..batch.store import parse_job_id
from ..jobs.state import JobInfo, RedisJobStore, new_job_id
from ..labelstudio import LabelStudioApi, LabelStudioApiError
from ..settings import Settings


class ActionRefused(Exception):
    """The action cannot be done: `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Requeue:
    """What a retry needs from the server: its Label Studio client (None: no credentials) and its
    model_version derivation for (project, label config)."""

    api: Callable[[], LabelStudioApi | None]
    version_for: Callable[[int, str], str]


@dataclass(frozen=True)
class Retried:
    job_id: str  # the new job
    retry_of: str
    tasks: int


def retry_failed(settings: Settings, client: redis.Redis, requeue: Requeue, job_id: str, *, now: float | None = None) -> Retried:
    """Re-queue `job_id`'s failed tasks as a new prelabel job; raises ActionRefused (404 unknown job,
    409 nothing to retry / still running / a Batch API job / no Label Studio credentials)."""
    if parse_job_id(job_id) is not None:
        raise ActionRefused(409, "a Batch API job: retry its failed tasks with gemini-ls prelabel --batch (docs/batch.md)")
    store = RedisJobStore(client, settings.redis_prefix)
    info = store.get(job_id)
    config = store.config(job_id)
    if info is None or config is None:
        raise ActionRefused(404, "no job by that id")
    cancelled = client.hget(f"{settings.redis_prefix}job:{job_id}", "cancelled") == b"1"
    if not info.finished and not cancelled:
        raise ActionRefused(409, "the job is still running: cancel it or wait for it to end")
    failed_ids = sorted(info.failed)
    if not failed_ids:
        raise ActionRefused(409, "the job has no failed task")
    api = requeue.api()
    if api is None:
        raise ActionRefused(409, "no Label Studio credentials: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY")
    try:
        tasks = [{"id": int(t["id"]), "data": dict(t.get("data") or {}), "project": info.project}
                 for t in api.iter_tasks(info.project, ids=failed_ids)]
    except LabelStudioApiError as exc:
        raise ActionRefused(502, f"Label Studio did not list the tasks: {exc}") from None
    if not tasks:
        raise ActionRefused(409, "Label Studio holds none of the failed tasks any more")
    created = time.time() if now is None else now
    new = JobInfo(id=new_job_id(), project=info.project, model_version=requeue.version_for(info.project, config),
                  total=len(tasks), created=created, ls_url=info.ls_url or api.base_url)
    store.create(new, config)
    from ..jobs.queue import RQJobQueue

    size = settings.job_chunk
    rq_ids = RQJobQueue(settings, client).submit(new.id, [tasks[i : i + size] for i in range(0, len(tasks), size)])
    store.set_chunks(new.id, len(rq_ids), rq_ids)
    return Retried(new.id, job_id, len(tasks))
