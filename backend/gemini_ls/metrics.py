"""Prometheus metrics, one `Metrics` value per process (passed down, never imported as a global).

Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR so /metrics adds every worker up.
No label value ever carries a key, a URL or a task's data: only fixed words and control types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def _counter(registry, name, doc, labels=()):
    return Counter(name, doc, labels, registry=registry)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.tasks = _counter(r, "gemini_ls_tasks", "Tasks answered, by outcome (ok, empty, failed, late)", ["outcome"])
        self.task_failures = _counter(r, "gemini_ls_task_failures", "Failed tasks by reason", ["reason"])
        self.config_errors = _counter(r, "gemini_ls_config_errors", "Label configs rejected, by route", ["route"])
        self.predict_requests = _counter(r, "gemini_ls_predict_requests", "/predict calls by mode", ["mode"])
        self.predict_seconds = Histogram(
            "gemini_ls_predict_seconds", "Wall time of one /predict call", registry=r,
            buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 40, 60, 90, 120),
        )
        self.gemini_requests = _counter(r, "gemini_ls_gemini_requests", "Gemini calls by kind and outcome", ["kind", "outcome"])
        self.gemini_retries = _counter(r, "gemini_ls_gemini_retries", "Gemini retries by reason", ["reason"])
        self.gemini_seconds = Histogram(
            "gemini_ls_gemini_seconds", "Latency of one Gemini call (with retries)", registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
        )
        self.gemini_tokens = _counter(r, "gemini_ls_gemini_tokens", "Tokens reported by Gemini", ["direction"])
        self.items_dropped = _counter(r, "gemini_ls_items_dropped", "Gemini items that could not be used, by reason", ["reason"])
        self.masks_dropped = _counter(r, "gemini_ls_masks_dropped", "Detections whose mask was degenerate (box kept)")
        self.regions = _counter(r, "gemini_ls_regions", "Label Studio regions produced, by result type", ["type"])
        self.tiles = _counter(r, "gemini_ls_tiles", "Image tiles asked separately (TILING), one Gemini request each")
        self.image_bytes_sent = _counter(r, "gemini_ls_image_bytes_sent", "Image bytes sent to Gemini", ["how"])
        self.image_fetch_errors = _counter(r, "gemini_ls_image_fetch_errors", "Image fetch/decode failures by reason", ["reason"])
        self.files_uploads = _counter(r, "gemini_ls_files_uploads", "Files API uploads")
        self.files_uploaded_bytes = _counter(r, "gemini_ls_files_uploaded_bytes", "Bytes uploaded to the Files API")
        self.files_cache = _counter(r, "gemini_ls_files_cache", "File URI cache look-ups", ["result"])
        self.files_evictions = _counter(r, "gemini_ls_files_evictions", "Cached file URIs evicted after Gemini rejected them")
        self.few_shot_requests = _counter(r, "gemini_ls_few_shot_requests", "Gemini requests sent with few-shot examples")
        self.few_shot_tokens = _counter(r, "gemini_ls_few_shot_input_tokens", "Input tokens the few-shot examples added (countTokens)")
        self.context_cache = _counter(r, "gemini_ls_context_cache", "Few-shot context cache look-ups and changes", ["result"])
        self.files_lock_waits = _counter(r, "gemini_ls_files_lock_waits", "Times a worker waited for another's upload")
        self.cache_errors = _counter(r, "gemini_ls_cache_errors", "Redis errors (cache bypassed)", ["op"])
        self.webhook_events = _counter(r, "gemini_ls_webhook_events", "Webhook events received", ["action"])
        # the annotators' verdicts themselves are gemini_ls_review_* (review/collector.py, read from the ledger)
        self.review_errors = _counter(r, "gemini_ls_review_errors", "Webhook events that could not be compared, by reason", ["reason"])
        # jobs/ (RQ jobs, write-back, shared Gemini quota)
        self.writeback = _counter(r, "gemini_ls_writeback", "Predictions written to Label Studio by background jobs", ["outcome"])
        self.jobs_queued = Gauge("gemini_ls_jobs_queue_depth", "RQ jobs waiting in the queue", registry=r, multiprocess_mode="max")
        self.jobs_state = Gauge("gemini_ls_jobs", "RQ jobs by state", ["state"], registry=r, multiprocess_mode="max")
        self.limiter_waits = _counter(r, "gemini_ls_limiter_waits", "Gemini calls that waited for the shared quota, by limit", ["limit"])
        self.limiter_wait_seconds = _counter(r, "gemini_ls_limiter_wait_seconds", "Seconds spent waiting for the shared quota")
        # Batch API pre-labelling (batch/job.py)
        self.batch_requests = _counter(r, "gemini_ls_batch_requests", "Batch API results read, by outcome (ok, error)", ["outcome"])
        self.batch_tokens = _counter(r, "gemini_ls_batch_tokens", "Tokens of Batch API results (usage metadata)", ["direction"])
        self.batch_cost = _counter(
            r, "gemini_ls_batch_cost_usd", "Estimated USD of Batch API results, at the batch and at the synchronous rate", ["rate"],
        )
