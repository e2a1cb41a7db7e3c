"""`gemini-ls worker`: an RQ worker for the job queue (any number, on any machine sharing the Redis).

It is RQ's `SimpleWorker` (no fork per job: the Gemini client, its connection pool and the
in-flight pool are built once per process) plus heartbeats WHILE a job runs, every JOB_HEARTBEAT
seconds, with a registry lease of 3 heartbeats. A SIGKILLed worker stops beating, RQ's registry
maintenance (run by the other workers every JOB_HEARTBEAT seconds) finds its job abandoned and,
with retries left, puts it back on the queue for another worker: about 3-4 heartbeats after the
death instead of RQ's default of minutes. The task claims a dead worker held lapse on the same
schedule (jobs/claims.py), so the retry can take them.
"""

from __future__ import annotations

import logging
import threading

import redis
from rq import SimpleWorker
from rq.worker import WorkerStatus

from ..redisconn import WORKER
from ..settings import Settings
from .queue import queue_name, redis_client, set_process_executor

log = logging.getLogger("gemini_ls.jobs")


class HeartbeatWorker(SimpleWorker):
    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        return max(3, int(3 * self.job_monitoring_interval))

    def execute_job(self, job, queue):
        execution = self.prepare_execution(job)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.job_monitoring_interval):
                try:
                    self.maintain_heartbeats(job, execution)
                except (redis.RedisError, OSError) as exc:  # a Redis blip: the next beat tries again
                    log.warning("worker heartbeat failed: %s", exc)

        beater = threading.Thread(target=beat, name="rq-heartbeat", daemon=True)
        beater.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beater.join(timeout=5)
        self.set_state(WorkerStatus.IDLE)


def make_worker(settings: Settings, name: str | None = None) -> HeartbeatWorker:
    from rq import Queue

    client = redis_client(settings, WORKER)  # its own pool: RQ raises its socket timeout for the blocking dequeue
    beat = max(1, int(round(settings.job_heartbeat)))
    return HeartbeatWorker(
        [Queue(queue_name(settings), connection=client)], connection=client, name=name,
        job_monitoring_interval=beat, maintenance_interval=beat,
        # an idle worker wakes every few heartbeats, so registry maintenance runs even when all are idle
        worker_ttl=max(20, 3 * beat + 15),
    )


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> int:
    if not settings.redis_url:
        log.error("gemini-ls worker needs REDIS_URL (without it, jobs run on the in-process pool of the command that made them)")
        return 2
    from .context import build_executor
    from .embedded import watch_parent

    watch_parent()
    set_process_executor(build_executor(settings))
    worker = make_worker(settings, name)
    log.info("gemini-ls worker %s on queue %s (concurrency %d per worker)", worker.name, queue_name(settings), settings.concurrency)
    worker.work(burst=burst, logging_level=settings.log_level)
    return 0
