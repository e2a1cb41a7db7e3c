"""/metrics for Batch API jobs: whichever process ran them (`gemini-ls prelabel --batch` is its own
process), their token sums, estimated cost and task counts are read from the one job store in Redis
(jobs/state.py) at scrape time, so the server's /metrics shows every job. One label value per job id
(`batch:PROJECT:MODEL_VERSION`): bounded by projects x versions, never by tasks."""

from __future__ import annotations

import logging

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .. import redisconn
from ..gemini.pricing import Tokens, cost_by_model
from ..jobs.records import BATCH
from ..jobs.state import RedisJobStore
from ..settings import Settings

log = logging.getLogger("gemini_ls.batch")


class BatchJobsCollector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: RedisJobStore | None = None  # one Redis client for every scrape, made at the first

    def _jobs(self) -> RedisJobStore:
        if self._store is None:  # `request`: a scrape must not hang on Redis
            client = redisconn.client(self.settings.redis_url or "", redisconn.REQUEST)
            self._store = RedisJobStore(client, self.settings.redis_prefix)
        return self._store

    def collect(self):
        s = self.settings
        if not s.redis_url:
            return
        tokens = GaugeMetricFamily("gemini_ls_batch_job_tokens", "Tokens of a Batch API job's results", labels=["job", "direction"])
        cost = GaugeMetricFamily("gemini_ls_batch_job_cost_usd", "Estimated USD of a Batch API job, at the batch and at the sync rate",
                                 labels=["job", "rate"])
        tasks = GaugeMetricFamily("gemini_ls_batch_job_tasks", "Tasks of a Batch API job by outcome", labels=["job", "outcome"])
        prices = s.price_overrides
        try:
            store = self._jobs()
            for job in store.counts([i for i in store.ids() if i.startswith(f"{BATCH}:")]):
                usage = sum(job.usage.values(), Tokens())
                for direction, n in (("input", usage.prompt), ("output", usage.output), ("thoughts", usage.thoughts)):
                    tokens.add_metric([job.id, direction], n)
                c = cost_by_model(job.usage, prices, s.batch_discount)
                if c.batch_usd is not None and c.sync_usd is not None:
                    cost.add_metric([job.id, "batch"], c.batch_usd)
                    cost.add_metric([job.id, "sync"], c.sync_usd)
                tasks.add_metric([job.id, "written"], job.done)
                tasks.add_metric([job.id, "failed"], len(job.failed))
        except (redis.RedisError, OSError) as exc:  # /metrics must answer even when Redis does not
            log.info("batch job metrics unavailable: %s", type(exc).__name__)
            return
        yield from (tokens, cost, tasks)


class BatchJobsMetrics:
    """The exposition text of the collector, appended to the process's own /metrics; made once per
    process (Backend.batch_metrics), so scrapes share its registry and Redis client."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(BatchJobsCollector(settings))
        self._on = bool(settings.redis_url)

    def text(self) -> bytes:
        return generate_latest(self.registry) if self._on else b""
