"""Where job chunks run: RQ on REDIS_URL, or the embedded in-process pool without it.

* `RQJobQueue`: every chunk is an RQ job on the queue `{REDIS_PREFIX}jobs`, done by any
  `gemini-ls worker` sharing the Redis (and by the one `gemini-ls serve` starts unless
  SERVE_WORKER=false). RQ keeps the chunk's retries (`Retry(max=JOB_RETRIES)`: a failed chunk or
  one whose worker died is run again), its timeout (JOB_TIMEOUT) and, out of retries, its failed
  registry with the reason; `prelabel --retry-failed` re-queues exactly their failed tasks.
* `LocalJobQueue`: no Redis. The same `ChunkExecutor` runs the chunks on threads of this process;
  what it does is lost if the process ends. Named as such in the log and /health.

Both take a job (`JobStore`) already created and a list of task chunks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import redis

from .. import redisconn
from ..redisconn import JOB, Profile
from ..settings import Settings

if TYPE_CHECKING:
    from .work import ChunkExecutor

log = logging.getLogger("gemini_ls.jobs")

IN_PROCESS = "in-process pool (embedded default: no REDIS_URL; work is lost if the process ends)"

_executor_lock = threading.Lock()
_executor: ChunkExecutor | None = None  # this process's ChunkExecutor (a configured client, built once)


def queue_name(settings: Settings) -> str:
    return f"{settings.redis_prefix}jobs"


def redis_client(settings: Settings, profile: Profile = JOB) -> redis.Redis:
    """The process's client for the job layer (redisconn.py's table: `job` unless told otherwise)."""
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set")
    return redisconn.client(settings.redis_url, profile)


def set_process_executor(executor: ChunkExecutor) -> None:
    global _executor
    with _executor_lock:
        _executor = executor


def process_executor() -> ChunkExecutor:
    """The ChunkExecutor of this process, built from the environment on first use."""
    global _executor
    with _executor_lock:
        if _executor is None:
            from .context import build_executor

            _executor = build_executor(Settings.from_env())
        return _executor


def run_chunk(job_id: str, tasks: list[dict]) -> dict:
    """The RQ entry point of one chunk (imported by name by the worker)."""
    from rq import get_current_job

    current = get_current_job()
    attempt = f"{current.id}:{current.retries_left}" if current is not None else "local"
    return process_executor().execute(job_id, tasks, attempt_id=attempt).as_dict()


class JobQueue(Protocol):
    kind: str

    def submit(self, job_id: str, chunks: Sequence[Sequence[Mapping[str, Any]]]) -> list[str]: ...

    def counts(self) -> dict[str, int]: ...

    def failed_chunks(self, job_id: str, rq_ids: Sequence[str]) -> list[tuple[str, str]]: ...

    def drop_failed(self, job_id: str, rq_ids: Sequence[str]) -> int: ...


class RQJobQueue:
    kind = "rq"

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        from rq import Queue

        self.settings = settings
        self.client = client or redis_client(settings)
        self.queue = Queue(queue_name(settings), connection=self.client)

    def submit(self, job_id, chunks):
        from rq import Queue, Retry

        data = [
            Queue.prepare_data(
                run_chunk, args=(job_id, [dict(t) for t in chunk]),
                timeout=int(self.settings.job_timeout), retry=Retry(max=self.settings.job_retries) if self.settings.job_retries else None,
                result_ttl=7 * 86400, failure_ttl=30 * 86400, description=f"gemini-ls job {job_id}: {len(chunk)} tasks",
                meta={"gemini_ls_job": job_id, "tasks": [t.get("id") for t in chunk]},
            )
            for chunk in chunks
        ]
        jobs = self.queue.enqueue_many(data)
        return [j.id for j in jobs]

    def counts(self):
        q = self.queue
        return {
            "queued": q.count,
            "started": q.started_job_registry.count,
            "failed": q.failed_job_registry.count,
            "finished": q.finished_job_registry.count,
        }

    def failed_chunks(self, job_id, rq_ids):
        from rq.job import Job

        failed = set(self.queue.failed_job_registry.get_job_ids())
        out = []
        for rid in rq_ids:
            if rid in failed:
                job = Job.fetch(rid, connection=self.client)
                result = job.latest_result()
                out.append((rid, (result.exc_string if result is not None and result.exc_string else "") or "failed"))
        return out

    def drop_failed(self, job_id, rq_ids):
        """Take the job's chunks out of RQ's failed registry (their failed tasks are being re-queued)."""
        failed = self.failed_chunks(job_id, rq_ids)
        for rid, _ in failed:
            self.queue.failed_job_registry.remove(rid, delete_job=False)
        return len(failed)

    def cancel(self, rq_ids: Sequence[str]) -> int:
        """Cancel the job's chunks no worker has started (the jobs page's Cancel): they leave the
        queue; a chunk already running finishes its tasks (at most JOB_CHUNK)."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus

        waiting = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
        cancelled = 0
        for rid in rq_ids:
            try:
                job = Job.fetch(rid, connection=self.client)
            except NoSuchJobError:
                continue
            if job.get_status() in waiting:
                job.cancel()
                cancelled += 1
        return cancelled

    def task_ids(self, rq_ids: Sequence[str]) -> list[int]:
        """The task ids the job's chunks carry (their meta), for releasing its claims on cancel."""
        from rq.job import Job

        jobs = Job.fetch_many(list(rq_ids), connection=self.client)
        return sorted({int(t) for job in jobs if job is not None for t in job.meta.get("tasks", ()) if t is not None})


class LocalJobQueue:
    kind = "in-process"

    def __init__(self, executor_factory: Callable[[], ChunkExecutor], threads: int = 2) -> None:
        self._factory = executor_factory
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="job-chunk")
        self._lock = threading.Lock()
        self._futures: dict[str, tuple[str, list[dict], Future]] = {}
        self._n = 0
        log.info("jobs run on the %s", IN_PROCESS)

    def _start(self, job_id: str, chunk: list[dict], rid: str) -> None:
        fut = self._pool.submit(self._factory().execute, job_id, chunk, f"{rid}:0")
        with self._lock:
            self._futures[rid] = (job_id, chunk, fut)

    def submit(self, job_id, chunks):
        ids = []
        for chunk in chunks:
            with self._lock:
                self._n += 1
                rid = f"local-{self._n}"
            self._start(job_id, [dict(t) for t in chunk], rid)
            ids.append(rid)
        return ids

    def counts(self):
        with self._lock:
            futs = [f for _, _, f in self._futures.values()]
        return {
            "queued": sum(1 for f in futs if not f.running() and not f.done()),
            "started": sum(1 for f in futs if f.running()),
            "failed": sum(1 for f in futs if f.done() and f.exception() is not None),
            "finished": sum(1 for f in futs if f.done() and f.exception() is None),
        }

    def failed_chunks(self, job_id, rq_ids):
        with self._lock:
            items = [(rid, self._futures[rid]) for rid in rq_ids if rid in self._futures]
        return [(rid, str(f.exception())) for rid, (_, _, f) in items if f.done() and f.exception() is not None]

    def drop_failed(self, job_id, rq_ids):
        failed = self.failed_chunks(job_id, rq_ids)
        with self._lock:
            for rid, _ in failed:
                self._futures.pop(rid, None)
        return len(failed)

    def wait(self) -> None:
        while True:
            with self._lock:
                futs = [f for _, _, f in self._futures.values() if not f.done()]
            if not futs:
                return
            for f in futs:
                try:
                    f.result()
                except Exception:  # a failed chunk is in failed_chunks(); here we only wait
                    pass

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
