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
from dataclasses import dataclass, field
from typing import Any

from .detections import RequestKind
from .feedback import PredictionLedger, compare
from .gemini.cache import MemoryFileCache, RedisFileCache
from .gemini.client import make_client
from .gemini.files import FilesManager
from .gemini.prompts import Prompt
from .gemini.request import GeminiCaller, Reply
from .images.fetch import ImageFetcher
from .images.lsauth import CredentialStore
from .images.prepare import PreparedImage
from .labelconfig import ProjectSpec
from .metrics import Metrics
from .modelversion import model_version
from .predict import BatchRunner, Predictor
from .settings import Settings

log = logging.getLogger("gemini_ls")

BANNER = """
==========================================================================================
  gemini-ls: NO GEMINI API KEY SET (GEMINI_API_KEY / GOOGLE_API_KEY).
  Predictions come from the BUILT-IN GEMINI EMULATOR at %s, not from Gemini.
  It only recognises synthetic coloured shapes. Set GEMINI_API_KEY for real predictions.
==========================================================================================
"""


@dataclass
class GatewayStatus:
    last_ok: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


class GeminiGateway:
    """The Gemini edge for the predictor: files policy + call + status bookkeeping for /health."""

    def __init__(self, caller: GeminiCaller, files: FilesManager) -> None:
        self.caller = caller
        self.files = files
        self.status = GatewayStatus()

    def ask(
        self, prompt: Prompt, images: Sequence[PreparedImage], kind: RequestKind, *, uses: Mapping[str, int], deadline: float
    ) -> Reply:
        try:
            reply = self.files.generate(self.caller, prompt, list(images), uses=uses, kind=kind, deadline=deadline)
        except Exception as exc:
            self.status.last_error = str(exc)[:300]
            self.status.last_error_at = time.time()
            raise
        self.status.last_ok = time.time()
        return reply


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
    ledger: PredictionLedger = field(default_factory=PredictionLedger)
    redis_probe: BackgroundProbe | None = None
    oneclick: Any = None  # jobs.oneclick.OneClick: late tasks of a click written back to Label Studio

    def __post_init__(self) -> None:
        healthy = getattr(self.cache, "healthy", None)
        if self.settings.redis_url and callable(healthy):
            self.redis_probe = BackgroundProbe(healthy)

    @property
    def emulated(self) -> bool:
        return self.emulator is not None

    def model_version(self, spec: ProjectSpec) -> str:
        return model_version(self.settings.model, spec, emulated=self.emulated, suffix=self.settings.model_version_suffix)

    def fetch(self, ref: str, task_id: Any) -> bytes:
        return self.fetcher.fetch(ref, task_id=task_id)

    def gemini_status(self) -> dict:
        st = self.gateway.status
        if self.emulator is not None:
            endpoint = f"EMULATOR (built-in, {self.emulator.url}): no API key set"
        else:
            endpoint = self.settings.base_url or "Google Gemini API"
        return {
            "model": self.settings.model,
            "endpoint": endpoint,
            "emulator": self.emulated,
            "files_policy": self.settings.files_policy,
            "reachable": None if st.last_ok is None and st.last_error is None else (
                st.last_ok is not None and (st.last_error_at is None or st.last_ok >= st.last_error_at)
            ),
            "last_error": st.last_error,
        }

    def redis_status(self) -> dict:
        if not self.settings.redis_url:
            return {"configured": False, "cache": "in-process"}
        # None until the first background probe has answered
        return {"configured": True, "reachable": self.redis_probe.value() if self.redis_probe else None}

    def predict_batch(self, tasks: Sequence[Mapping[str, Any]], spec: ProjectSpec, version: str, *, deadline: float,
                      project: Any = None) -> list:
        """A /predict batch: through the one-click write-back when it is wired, else the plain runner."""
        if self.oneclick is None:
            return self.runner.run(tasks, spec, version, self.fetch, deadline=deadline)
        return self.oneclick.run(tasks, spec, version, self.fetch, deadline=deadline, project_field=project)

    def jobs_status(self) -> dict:
        from .jobs.queue import IN_PROCESS

        queue = "rq" if self.settings.redis_url else IN_PROCESS
        write_back = self.oneclick.status() if self.oneclick is not None else {
            "enabled": False, "mode": "off (WRITE_BACK=false): late tasks are kept and served on the next Retrieve predictions"}
        return {"queue": queue, "write_back": write_back}

    def refresh_job_metrics(self) -> None:
        """Queue depth and jobs by state for /metrics, read from RQ when it is scraped."""
        if not self.settings.redis_url:
            return
        try:
            from .jobs.queue import RQJobQueue

            counts = RQJobQueue(self.settings).counts()
        except Exception as exc:  # Redis down: /metrics still answers
            log.debug("job metrics unavailable: %s", exc)
            return
        self.metrics.jobs_queued.set(counts.get("queued", 0))
        for state, n in counts.items():
            self.metrics.jobs_state.labels(state).set(n)

    def on_webhook(self, body: Mapping[str, Any]) -> dict:
        action = str(body.get("action"))
        self.metrics.webhook_events.labels(action if action.isupper() and len(action) < 64 else "other").inc()
        annotation = body.get("annotation") if isinstance(body.get("annotation"), Mapping) else None
        if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED") and annotation:
            task = body.get("task") if isinstance(body.get("task"), Mapping) else {}
            task_id = task.get("id", annotation.get("task"))
            predicted = self.ledger.get(task_id)
            result = annotation.get("result") if isinstance(annotation.get("result"), list) else []
            if predicted is None:
                log.info("webhook %s: annotation %s for task %s (%d regions); no prediction of ours on record",
                         action, annotation.get("id"), task_id, len(result))
                return {"task": task_id, "regions": len(result), "verdict": None}
            verdict = compare(predicted, result)
            for outcome, count in verdict.as_dict().items():
                if count:
                    self.metrics.feedback_regions.labels(outcome).inc(count)
            log.info("webhook %s: annotation %s for task %s: %s", action, annotation.get("id"), task_id, verdict.as_dict())
            return {"task": task_id, "regions": len(result), "verdict": verdict.as_dict()}
        log.info("webhook %s received", action)
        return {}


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

    caller = GeminiCaller(client, settings, metrics, make_gate(settings, metrics))
    if settings.redis_url:
        cache: Any = RedisFileCache(settings.redis_url, settings.redis_prefix, metrics)
    else:
        cache = MemoryFileCache()
    files = FilesManager(client, cache, settings, metrics)
    gateway = GeminiGateway(caller, files)
    credentials = CredentialStore.from_settings(settings)
    fetcher = ImageFetcher(settings, credentials, metrics)
    predictor = Predictor(settings, metrics, gateway)
    outcomes = None
    if settings.redis_url:
        from .jobs.outcomes import RedisOutcomeStore
        from .jobs.queue import redis_client

        outcomes = RedisOutcomeStore(redis_client(settings), settings.redis_prefix)
    runner = BatchRunner(predictor, settings, metrics, outcomes=outcomes)
    from .jobs.context import make_claims
    from .jobs.oneclick import OneClick

    return Backend(
        settings=settings, metrics=metrics, credentials=credentials, fetcher=fetcher,
        gateway=gateway, runner=runner, cache=cache, emulator=emulator,
        oneclick=OneClick(settings, metrics, runner, make_claims(settings), credentials) if settings.write_back else None,
    )
