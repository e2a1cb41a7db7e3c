"""/metrics for Batch API jobs: whichever process ran them (`gemini-ls prelabel --batch` is its own
process), their token sums, estimated cost and task counts are read from the job store in Redis at
scrape time, so the server's /metrics shows every job. One label value per job id
(`batch:PROJECT:MODEL_VERSION`): bounded by projects x versions, never by tasks."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..settings import Settings
from .pricing import Tokens, cost_by_model
from .store import RedisJobStore, parse_job_id

log = logging.getLogger("gemini_ls.batch")


class BatchJobsCollector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self):
        s = self.settings
        if not s.redis_url:
            return
        tokens = GaugeMetricFamily("gemini_ls_batch_job_tokens", "Tokens of a Batch API job's results", labels=["job", "direction"])
        cost = GaugeMetricFamily("gemini_ls_batch_job_cost_usd", "Estimated USD of a Batch API job, at the batch and at the sync rate",
                                 labels=["job", "rate"])
        tasks = GaugeMetricFamily("gemini_ls_batch_job_tasks", "Tasks of a Batch API job by outcome", labels=["job", "outcome"])
        prices = {m: (i, o) for m, i, o in s.prices}
        try:
            for job in RedisJobStore.jobs(s.redis_url, s.redis_prefix):
                parsed = parse_job_id(job)
                if parsed is None:
                    continue
                store = RedisJobStore(s.redis_url, s.redis_prefix, *parsed)
                usage = sum(store.usage().values(), Tokens())
                for direction, n in (("input", usage.prompt), ("output", usage.output), ("thoughts", usage.thoughts)):
                    tokens.add_metric([job, direction], n)
                c = cost_by_model(store.usage(), prices, s.batch_discount)
                if c.batch_usd is not None and c.sync_usd is not None:
                    cost.add_metric([job, "batch"], c.batch_usd)
                    cost.add_metric([job, "sync"], c.sync_usd)
                tasks.add_metric([job, "written"], len(store.written()))
                tasks.add_metric([job, "failed"], len(store.failed()))
        except Exception as exc:  # /metrics must answer even when Redis does not
            log.info("batch job metrics unavailable: %s", type(exc).__name__)
            return
        yield from (tokens, cost, tasks)


def batch_jobs_text(settings: Settings) -> bytes:
    """The exposition text of the collector (appended to the process's own /metrics)."""
    if not settings.redis_url:
        return b""
    registry = CollectorRegistry()
    registry.register(BatchJobsCollector(settings))
    return generate_latest(registry)
