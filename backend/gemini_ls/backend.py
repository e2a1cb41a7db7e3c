"""The server's wiring: the pipeline (pipeline.py), the review loop and the job machinery, composed
once per process and held for the HTTP protocol (server.py).

Commands build only what they use: `predict` / `evaluate` / `prelabel --batch` a pipeline (and the
review loop's learner), a job worker its chunk executor (jobs/context.py). This module is imported
by the server and nothing below it, so no lower layer sees the whole.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from . import redisconn
from .batch.metrics import BatchJobsMetrics
from .gemini.cache import FileCache
from .gemini.daily import DailyUsage
from .gemini.gateway import GeminiGateway
from .gemini.rategate import RateGate
from .images.fetch import ImageFetcher
from .interactive import InteractiveService
from .jobs.context import make_claims, make_store
from .jobs.oneclick import Handoff, OneClick
from .jobs.outcomes import make_outcomes
from .jobs.queue import IN_PROCESS, RQJobQueue
from .jobs.remainders import Remainders
from .labelconfig import ProjectSpec
from .labelstudio import CredentialStore
from .metrics import Metrics
from .modelversion import model_version_for
from .pipeline import Pipeline, build_pipeline
from .predict import TaskOutcome
from .redisconn import REQUEST
from .review.learning import LearnedState, Learner
from .review.loop import build_review
from .review.webhook import ReviewService
from .selectionrunner import SelectionRunner
from .settings import NO_GEMINI_MESSAGE, Settings

if TYPE_CHECKING:
    from .emulator.server import EmulatorServer

log = logging.getLogger("gemini_ls")


class BackgroundProbe:
    """Last-known answer of a slow check, refreshed in a background thread at most every `interval`.

    /health must answer at once (Label Studio allows it 1 s and polls it often), so it reports what
    the last probe saw instead of probing per call.
    """

    def __init__(self, check: Callable[[], object], interval: float = 15.0) -> None:
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


@dataclass(frozen=True)
class ServerJobs:
    queue: RQJobQueue | None  # with REDIS_URL (built once: /metrics reads it per scrape)
    oneclick: OneClick | None  # WRITE_BACK: late tasks of a click written back to Label Studio


def build_jobs(settings: Settings, pipeline: Pipeline) -> ServerJobs:
    """The server's job machinery on its pipeline: the RQ queue and the one-click write-back."""
    queue = None
    if settings.redis_url:
        # the job layer's client: /predict waits on it (outcomes, claims, a click's hand-off), so it
        # has the short `request` timeouts and obeys the breaker (redisconn.py)
        queue = RQJobQueue(settings, redisconn.client(settings.redis_url, REQUEST))
    handoff = Handoff(settings, make_store(settings, queue.client), queue) if queue is not None else None
    # without Redis a click's remainder runs here: listed as this process's job (jobs/remainders.py)
    remainders = Remainders(make_store(settings)) if queue is None else None
    oneclick = OneClick(settings, pipeline.metrics, pipeline.runner, make_claims(settings, queue.client if queue else None),
                        pipeline.credentials, handoff, remainders) if settings.write_back else None
    return ServerJobs(queue, oneclick)


@dataclass
class Backend:
    settings: Settings
    metrics: Metrics
    credentials: CredentialStore
    fetcher: ImageFetcher
    gateway: GeminiGateway | None  # None: Gemini is not configured (no key, no GEMINI_EMULATOR=embedded)
    runner: SelectionRunner
    cache: FileCache
    emulator: EmulatorServer | None
    review: ReviewService | None
    learner: Learner | None
    rate_gate: RateGate | None  # the process's shared 429 cool-down, for /health
    interactive: InteractiveService  # the annotator's click, box or phrase
    oneclick: OneClick | None  # late tasks of a click written back to Label Studio
    job_queue: RQJobQueue | None  # with REDIS_URL (built once: /metrics reads it per scrape)
    batch_metrics: BatchJobsMetrics  # every Batch API job's numbers, from Redis
    usage: DailyUsage | None = None  # today's Gemini tokens and Files API savings (gemini/usage.py), the jobs page
    redis_probe: BackgroundProbe | None = field(default=None, init=False)
    pipeline: Pipeline | None = None  # the whole, for the page's prelabel estimate (web/actions.py)

    def __post_init__(self) -> None:
        healthy = getattr(self.cache, "healthy", None)
        if self.settings.redis_url and callable(healthy):
            self.redis_probe = BackgroundProbe(healthy)

    @property
    def emulated(self) -> bool:
        return self.emulator is not None

    def model_version(self, spec: ProjectSpec) -> str:
        """`spec`: the effective one (`effective_spec`), whose learned tag the version ends with."""
        return model_version_for(self.settings, spec, emulated=self.emulated)

    def learned(self, project: int | None) -> LearnedState:
        """What the review loop learned for this project (empty when REVIEW_LEARN is off)."""
        return self.learner.state(project) if self.learner is not None else LearnedState()

    def effective_spec(self, spec: ProjectSpec, project: int | None) -> ProjectSpec:
        """`spec` with what the review loop learned for `project` (thresholds, synonyms, the
        example set's tag): the spec every prediction and its model_version come from."""
        return self.learned(project).applied(spec)

    def fetch(self, ref: str, task_id: int | str | None) -> bytes:
        return self.fetcher.fetch(ref, task_id=task_id)

    @property
    def not_configured(self) -> str | None:
        """Why nothing can answer as Gemini (NO_GEMINI_MESSAGE), or None when something can."""
        return None if self.gateway is not None else NO_GEMINI_MESSAGE

    def gemini_status(self) -> dict:
        if self.gateway is None:
            endpoint = "NOT CONFIGURED: no API key"
        elif self.emulator is not None:
            endpoint = f"EMULATOR (built-in, {self.emulator.url}): no API key set, GEMINI_EMULATOR=embedded"
        else:
            endpoint = self.settings.base_url or "Google Gemini API"
        health = self.gateway.health if self.gateway is not None else None
        status = {
            "configured": self.gateway is not None,
            "model": self.settings.routing.model.name,
            "routing": self.settings.routing.describe(),
            "endpoint": endpoint,
            "emulator": self.emulated,
            "files_policy": self.settings.files_policy,
            "reachable": health.reachable if health is not None else None,
            "last_error": health.last_error if health is not None else None,
            # None, or {"state": "open", "until": <UTC time>, "seconds_left": s} / {"state": "half_open", ...}
            "cooling_down": self.rate_gate.status() if self.rate_gate is not None else None,
        }
        if self.gateway is None:
            status["error"] = NO_GEMINI_MESSAGE
        return status

    def redis_status(self) -> dict:
        if not self.settings.redis_url:
            return {"configured": False, "cache": "in-process"}
        # reachable: None until the first background probe has answered; breaker: this process's
        # circuit ({"state": "closed" | "open" | "half_open", "seconds_left", "trips", ...})
        return {"configured": True, "reachable": self.redis_probe.value() if self.redis_probe else None,
                "breaker": redisconn.status(self.settings.redis_url)}

    def review_metrics(self) -> bytes:
        return self.review.metrics_text() if self.review is not None else b""

    def predict_selection(self, tasks: Sequence[Mapping[str, Any]], spec: ProjectSpec, version: str, *, deadline: float,
                          project: Any = None, label_config: str | None = None) -> list[TaskOutcome]:
        """A /predict selection: through the one-click write-back when it is wired, else the plain runner.
        `spec` is the effective one: what is written back and what is answered carry the learned state."""
        if self.oneclick is None:
            return self.runner.run(tasks, spec, version, self.fetch, deadline=deadline)
        return self.oneclick.run(tasks, spec, version, self.fetch, deadline=deadline, project_field=project,
                                 label_config=label_config)

    def jobs_status(self) -> dict:
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
        except (redis.RedisError, OSError) as exc:  # Redis down: /metrics still answers
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
    """The server's whole: pipeline, review loop, the annotator's interactive service, job machinery."""
    # allow_unconfigured: with no key the server still starts, to say so on /health and /predict
    pipeline = build_pipeline(settings, make_outcomes(settings), allow_unconfigured=True)
    settings = pipeline.settings  # with the emulator's URL and key when it stands in for Gemini
    review = build_review(settings, pipeline.credentials, pipeline.metrics, pipeline.few_shot)
    interactive = InteractiveService(pipeline.runner.predictor, settings, pipeline.fetch)
    jobs = build_jobs(settings, pipeline)
    return Backend(
        settings=settings, metrics=pipeline.metrics, credentials=pipeline.credentials, fetcher=pipeline.fetcher,
        gateway=pipeline.gateway, runner=pipeline.runner, cache=pipeline.cache, emulator=pipeline.emulator,
        review=review.service, learner=review.learner, rate_gate=pipeline.rate_gate, interactive=interactive,
        usage=pipeline.usage, oneclick=jobs.oneclick, job_queue=jobs.queue, batch_metrics=BatchJobsMetrics(settings),
        pipeline=pipeline,
    )
