"""Wiring of the prediction pipeline: provider, predictor and runner, built once per process.

Every entry point that predicts builds this and only this (`gemini-ls predict`, `evaluate`, a job
worker, `prelabel --batch`); the server adds the review loop and the job machinery on top
(backend.py). It imports nothing of `jobs/`, so the job layer may build a pipeline of its own.

With no Gemini API key and GEMINI_EMULATOR=embedded the built-in emulator is started in-process and
used instead, loudly: a log banner, /health and model_version all say so, so nobody mistakes
emulator output for Gemini's. With neither, there is no stand-in: a command refuses to start
(`GeminiNotConfigured`), and the server's pipeline gets a provider that answers every request with
that error and calls nothing (`allow_unconfigured`), so /health and /predict can say so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .detections import ParsedAnswer
from .gemini.cache import FileCache, make_file_cache
from .gemini.client import make_client
from .gemini.ctxcache import ContextCaches, make_cache_store
from .gemini.daily import DailyUsage, make_daily_usage
from .gemini.fewshot import FewShotWire
from .gemini.files import FilesManager
from .gemini.gateway import GeminiGateway
from .gemini.quota import make_gate
from .gemini.rategate import RateGate
from .gemini.request import GeminiCaller
from .images.fetch import ImageFetcher
from .images.prepare import PreparedImage
from .labelconfig import ProjectSpec
from .labelstudio import CredentialStore
from .metrics import Metrics
from .modelversion import model_version_for
from .pagepredict import PagePredictor
from .plan import PlannedRequest
from .provider import CallHealth, ProviderError
from .review.fewshot import FewShotBook, make_usage, tag_of_version
from .selectionrunner import OutcomeStore, SelectionRunner
from .settings import NO_GEMINI_MESSAGE, Settings, SettingsError

if TYPE_CHECKING:
    from .emulator.server import EmulatorServer

log = logging.getLogger("gemini_ls")

BANNER = """
==========================================================================================
  gemini-ls: NO GEMINI API KEY SET (GEMINI_API_KEY / GOOGLE_API_KEY), GEMINI_EMULATOR=embedded.
  Predictions come from the BUILT-IN GEMINI EMULATOR at %s, not from Gemini.
  It only recognises synthetic coloured shapes. Set GEMINI_API_KEY for real predictions.
==========================================================================================
"""


class GeminiNotConfigured(SettingsError):
    """Neither a key nor GEMINI_EMULATOR=embedded: a command that calls Gemini must not start."""

    def __init__(self) -> None:
        super().__init__(NO_GEMINI_MESSAGE)


class UnconfiguredProvider:
    """The server's provider when Gemini is not configured: every request fails with the message
    naming the variables, without a call anywhere (the server also answers /predict before reaching
    it; this is the floor under that)."""

    def __init__(self) -> None:
        self.health = CallHealth()

    def answer(self, plan: PlannedRequest, images: Sequence[PreparedImage], *, uses: Mapping[str, int],
               deadline: float) -> ParsedAnswer:
        raise ProviderError("gemini_not_configured", NO_GEMINI_MESSAGE)


@dataclass(frozen=True)
class Pipeline:
    """One process's way from a task to its predictions. `settings` are the effective ones: with
    the emulator's URL and key when it stands in for Gemini."""

    settings: Settings
    metrics: Metrics
    credentials: CredentialStore
    fetcher: ImageFetcher
    gateway: GeminiGateway | None  # None: Gemini is not configured (the server only, allow_unconfigured)
    runner: SelectionRunner
    cache: FileCache
    rate_gate: RateGate  # the process's shared 429 cool-down (and GEMINI_RPM / GEMINI_TPM), for /health
    emulator: EmulatorServer | None = None
    few_shot: FewShotBook | None = None  # FEW_SHOT_EXAMPLES: the examples put onto the plans
    usage: DailyUsage | None = None  # today's Gemini tokens and Files API savings, shared in Redis (the jobs page)

    @property
    def emulated(self) -> bool:
        return self.emulator is not None

    @property
    def configured(self) -> bool:
        return self.gateway is not None

    def model_version(self, spec: ProjectSpec) -> str:
        """`spec`: the effective one, with the review loop's learned state applied (LearnedState.applied)."""
        return model_version_for(self.settings, spec, emulated=self.emulated)

    def fetch(self, ref: str, task_id: int | str | None) -> bytes:
        return self.fetcher.fetch(ref, task_id=task_id)

    def end_of_job(self, model_version: str) -> int:
        """A job of `model_version` ended: delete its few-shot context caches (gemini/ctxcache.py)."""
        wire = self.gateway.fewshot if self.gateway is not None else None
        if wire is None or wire.caches is None:
            return 0
        return wire.caches.release(tag_of_version(model_version))

    def close(self) -> None:
        """For a command that is done: the runner's pool, and the emulator it started."""
        self.runner.shutdown()
        if self.emulator is not None:
            self.emulator.stop()


def build_pipeline(settings: Settings, outcomes: OutcomeStore | None = None, *,
                   allow_unconfigured: bool = False) -> Pipeline:
    """`outcomes`: the finished outcomes shared through Redis (the job layer's store), if any.
    Gemini not configured: GeminiNotConfigured, or with `allow_unconfigured` (the server, which
    must stay up to say so) a pipeline whose every request fails with NO_GEMINI_MESSAGE."""
    logging.getLogger("gemini_ls").setLevel(settings.log_level)
    if not settings.gemini_configured and not allow_unconfigured:
        raise GeminiNotConfigured()
    metrics = Metrics()
    emulator = None
    if settings.uses_emulator:
        from .emulator.keys import DEFAULT_API_KEY
        from .emulator.server import EmulatorServer

        emulator = EmulatorServer(host="127.0.0.1", port=0, latency=settings.emulator_latency).start()
        settings = settings.with_(api_key=DEFAULT_API_KEY, base_url=emulator.url)
        log.warning(BANNER, emulator.url)
    gate = make_gate(settings, metrics)
    cache = make_file_cache(settings.redis_url, settings.redis_prefix, metrics)  # redisconn's `request` profile
    usage = make_daily_usage(settings.redis_url, settings.redis_prefix)
    gateway = _gateway(settings, metrics, gate, cache, usage) if settings.gemini_configured else None
    credentials = CredentialStore.from_settings(settings)
    fetcher = ImageFetcher(settings, credentials, metrics)
    predictor = PagePredictor(settings, metrics, gateway if gateway is not None else UnconfiguredProvider())
    runner = SelectionRunner(predictor, settings, metrics, outcomes=outcomes)
    book = FewShotBook(settings, lambda ref, task_id: fetcher.fetch(ref, task_id=task_id)) if settings.few_shot_examples else None
    runner.few_shot = book
    return Pipeline(settings=settings, metrics=metrics, credentials=credentials, fetcher=fetcher, gateway=gateway,
                    runner=runner, cache=cache, rate_gate=gate, emulator=emulator, few_shot=book, usage=usage)


def _gateway(settings: Settings, metrics: Metrics, gate: RateGate, cache: FileCache, usage: DailyUsage | None = None) -> GeminiGateway:
    client = make_client(settings)
    caller = GeminiCaller(client, settings, metrics, gate, usage=usage)
    files = FilesManager(client, cache, settings, metrics, usage=usage)
    caches = ContextCaches(client, make_cache_store(settings.redis_url, settings.redis_prefix), settings, metrics) if (
        settings.few_shot_cache) else None
    fewshot = FewShotWire(files, settings, metrics, make_usage(settings.redis_url, settings.redis_prefix), caches) if (
        settings.few_shot_examples) else None
    return GeminiGateway(caller, files, fewshot)
