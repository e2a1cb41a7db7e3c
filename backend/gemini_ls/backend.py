"""Wiring: builds the configured components once per process and holds them for the server.

With no Gemini API key the built-in emulator is started in-process and used instead, loudly: a log
banner, /health and model_version all say so, so a newcomer sees the backend work at once and
nobody mistakes emulator output for Gemini's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .gemini.cache import make_file_cache
from .gemini.client import make_client
from .gemini.fewshot import FewShotWire
from .gemini.files import FilesManager
from .gemini.gateway import GeminiGateway
from .gemini.prompts import PROMPT_VERSION
from .gemini.request import GeminiCaller, RateGate
from .images.fetch import ImageFetcher
from .interactive import InteractiveService
from .labelconfig import ProjectSpec
from .labelstudio import CredentialStore, LabelStudioApi
from .labelstudio.client import READ_TIMEOUT
from .metrics import Metrics
from .modelversion import model_version
from .predict import BatchRunner, Predictor
from .review.fewshot import ExampleSource, FewShotBook, make_usage
from .review.learning import LearnedState, Learner
from .review.ledger import make_ledger
from .review.webhook import ReviewService
from .settings import Settings

log = logging.getLogger("gemini_ls")

BANNER = """
==========================================================================================
  gemini-ls: NO GEMINI API KEY SET (GEMINI_API_KEY / GOOGLE_API_KEY).
  Predictions come from the BUILT-IN GEMINI EMULATOR at %s, not from Gemini.
  It only recognises synthetic coloured shapes. Set GEMINI_API_KEY for real predictions.
==========================================================================================
"""


def model_version_for(settings: Settings, spec: ProjectSpec, *, emulated: bool, learned: LearnedState | None = None) -> str:
    """The one derivation of model_version: the server, `prelabel` and batch jobs must agree on it,
    since Label Studio skips tasks holding a prediction of the current version and exactly-once
    claims are keyed by it."""
    routing = settings.routing
    base = model_version(
        routing.model.name, spec, prompt_version=PROMPT_VERSION, emulated=emulated,
        suffix=settings.model_version_suffix, mask_model=routing.mask_model.name,
    )
    tag = learned.tag() if learned is not None else None
    return f"{base}-{tag}" if tag else base


class BackgroundProbe:
    """Last-known answer of a slow check, refreshed in a background thread at most every `interval`.

    /health must answer at once (Label Studio allows it 1 s and polls it often), so it reports what
    the last probe saw instead of probing per call.
    """

    def __init__(self, check, interval: float = 15.0) -> None:
        self._check = check
        self._interval = interval
        self._lock = threading.Lock()
        self._value: bool | None = None
        self._checked_at = float("-inf")
        self._running = False

    def _run(self) -> None:
        try:
            value = bool(self._check())
        except Exception:
            value = False
        with self._lock:
            self._value, self._checked_at, self._running = value, time.monotonic(), False

    def value(self) -> bool | None:
        with self._lock:
            stale = time.monotonic() - self._checked_at > self._interval
            if stale and not self._running:
                self._running = True
                threading.Thread(target=self._run, name="health-probe", daemon=True).start()
            return self._value


@dataclass
class Backend:
    settings: Settings
    metrics: Metrics
    credentials: CredentialStore
    fetcher: ImageFetcher
    gateway: GeminiGateway
    runner: BatchRunner
    cache: Any
    emulator: Any = None
    review: ReviewService | None = None
    learner: Learner | None = None
    redis_probe: BackgroundProbe | None = None
    rate_gate: RateGate | None = None  # the process's shared 429 cool-down, for /health
    interactive: Any = None  # interactive.InteractiveService: the annotator's click, box or phrase
    oneclick: Any = None  # jobs.oneclick.OneClick: late tasks of a click written back to Label Studio
    job_queue: Any = None  # jobs.queue.RQJobQueue with REDIS_URL (built once: /metrics reads it per scrape)
    batch_metrics: Any = None  # batch.metrics.BatchJobsMetrics: every Batch API job's numbers, from Redis

    def __post_init__(self) -> None:
        if self.batch_metrics is None:
            from .batch.metrics import BatchJobsMetrics

            self.batch_metrics = BatchJobsMetrics(self.settings)
        healthy = getattr(self.cache, "healthy", None)
        if self.settings.redis_url and callable(healthy):
            self.redis_probe = BackgroundProbe(healthy)

    @property
    def emulated(self) -> bool:
        return self.emulator is not None

    def model_version(self, spec: ProjectSpec, learned: LearnedState | None = None) -> str:
        return model_version_for(self.settings, spec, emulated=self.emulated, learned=learned)

    def learned(self, project: int | None) -> LearnedState:
        """What the review loop learned for this project (empty when REVIEW_LEARN is off)."""
        return self.learner.state(project) if self.learner is not None else LearnedState()

    def fetch(self, ref: str, task_id: Any) -> bytes:
        return self.fetcher.fetch(ref, task_id=task_id)

    def gemini_status(self) -> dict:
        health = self.gateway.health
        if self.emulator is not None:
            endpoint = f"EMULATOR (built-in, {self.emulator.url}): no API key set"
        else:
            endpoint = self.settings.base_url or "Google Gemini API"
        return {
            "model": self.settings.routing.model.name,
            "routing": self.settings.routing.describe(),
            "endpoint": endpoint,
            "emulator": self.emulated,
            "files_policy": self.settings.files_policy,
            "reachable": health.reachable,
            "last_error": health.last_error,
            # None, or {"state": "open", "until": <UTC time>, "seconds_left": s} / {"state": "half_open", ...}
            "cooling_down": self.rate_gate.status() if self.rate_gate is not None else None,
        }

    def redis_status(self) -> dict:
        if not self.settings.redis_url:
            return {"configured": False, "cache": "in-process"}
        # None until the first background probe has answered
        return {"configured": True, "reachable": self.redis_probe.value() if self.redis_probe else None}

    def review_metrics(self) -> bytes:
        return self.review.metrics_text() if self.review is not None else b""

    def predict_batch(self, tasks: Sequence[Mapping[str, Any]], spec: ProjectSpec, version: str, *, deadline: float,
                      project: Any = None, learned: LearnedState | None = None, label_config: str | None = None) -> list:
        """A /predict batch: through the one-click write-back when it is wired, else the plain runner.
        `learned` is applied to what is written back; the caller applies it to the answer."""
        if self.oneclick is None:
            return self.runner.run(tasks, spec, version, self.fetch, deadline=deadline)
        return self.oneclick.run(tasks, spec, version, self.fetch, deadline=deadline, project_field=project,
                                 learned=learned, label_config=label_config)

    def jobs_status(self) -> dict:
        from .jobs.queue import IN_PROCESS

        queue = "rq" if self.settings.redis_url else IN_PROCESS
        write_back = self.oneclick.status() if self.oneclick is not None else {
            "enabled": False, "mode": "off (WRITE_BACK=false): late tasks are kept and served on the next Retrieve predictions"}
        return {"queue": queue, "write_back": write_back}

    def refresh_job_metrics(self) -> None:
        """Queue depth and jobs by state for /metrics, read from RQ when it is scraped."""
        if self.job_queue is None:
            return
        try:
            counts = self.job_queue.counts()
        except Exception as exc:  # Redis down: /metrics still answers
            log.debug("job metrics unavailable: %s", exc)
            return
        self.metrics.jobs_queued.set(counts.get("queued", 0))
        for state, n in counts.items():
            self.metrics.jobs_state.labels(state).set(n)

    def on_webhook(self, body: Mapping[str, Any]) -> dict:
        action = str(body.get("action"))
        self.metrics.webhook_events.labels(action if action.isupper() and len(action) < 64 else "other").inc()
        if self.review is None:
            return {}
        return self.review.handle(body)


def build_backend(settings: Settings) -> Backend:
    logging.getLogger("gemini_ls").setLevel(settings.log_level)
    metrics = Metrics()
    emulator = None
    if settings.uses_emulator:
        from .emulator.server import DEFAULT_API_KEY, EmulatorServer

        emulator = EmulatorServer(host="127.0.0.1", port=0, latency=settings.emulator_latency).start()
        settings = settings.with_(api_key=DEFAULT_API_KEY, base_url=emulator.url)
        log.warning(BANNER, emulator.url)
    client = make_client(settings)
    from .jobs.limiter import make_gate

    gate = make_gate(settings, metrics)
    caller = GeminiCaller(client, settings, metrics, gate)
    cache = make_file_cache(settings.redis_url, settings.redis_prefix, metrics)
    files = FilesManager(client, cache, settings, metrics)
    fewshot = FewShotWire(files, settings, metrics, make_usage(settings.redis_url, settings.redis_prefix)) if (
        settings.few_shot_examples) else None
    gateway = GeminiGateway(caller, files, fewshot)
    credentials = CredentialStore.from_settings(settings)
    fetcher = ImageFetcher(settings, credentials, metrics)
    predictor = Predictor(settings, metrics, gateway)
    outcomes = job_queue = None
    if settings.redis_url:
        from .jobs.outcomes import RedisOutcomeStore
        from .jobs.queue import RQJobQueue, redis_client

        jobs_redis = redis_client(settings)  # one client (its own connection pool) for the job layer
        outcomes = RedisOutcomeStore(jobs_redis, settings.redis_prefix)
        job_queue = RQJobQueue(settings, jobs_redis)
    runner = BatchRunner(predictor, settings, metrics, outcomes=outcomes)
    book = FewShotBook(settings, lambda ref, task_id: fetcher.fetch(ref, task_id=task_id)) if settings.few_shot_examples else None
    runner.few_shot = book
    from .jobs.context import make_claims, make_store
    from .jobs.oneclick import Handoff, OneClick

    handoff = Handoff(settings, make_store(settings, job_queue.client), job_queue) if job_queue is not None else None

    interactive = InteractiveService(predictor, settings, lambda ref, task_id: fetcher.fetch(ref, task_id=task_id))
    ledger = make_ledger(settings.redis_url, settings.redis_prefix)
    reader = LabelStudioApi(credentials, timeout=READ_TIMEOUT)  # reads the credentials /setup may change at every call
    review = ReviewService(ledger, reader, metrics)
    learner = Learner(ledger, settings.review_learn, settings.review_min_samples, few_shot=settings.few_shot_examples,
                      source=ExampleSource(reader.get_json), book=book)
    return Backend(
        settings=settings, metrics=metrics, credentials=credentials, fetcher=fetcher,
        gateway=gateway, runner=runner, cache=cache, emulator=emulator, rate_gate=gate, interactive=interactive,
        review=review, learner=learner, job_queue=job_queue,
        oneclick=OneClick(settings, metrics, runner, make_claims(settings, job_queue.client if job_queue else None), credentials,
                          handoff) if settings.write_back else None,
    )
