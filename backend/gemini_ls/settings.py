"""Every environment variable the backend reads, in one frozen value.

`Settings.from_env()` is called once at start-up; the value is passed down explicitly, so a test
can build its own `Settings(...)` without touching the process environment.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .gemini.models import DEFAULT_MASK_MODEL, DEFAULT_MODEL, ModelRouting
from .labelconfig import Defaults
from .labelstudio.retry import WRITE_ATTEMPTS


class SettingsError(ValueError):
    pass


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _int(env: Mapping[str, str], name: str, default: int, lo: int = 0) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not an integer") from exc
    if value < lo:
        raise SettingsError(f"{name}={raw!r} must be >= {lo}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float = 0.0, hi: float | None = None) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number") from exc
    if not math.isfinite(value) or value < lo:
        raise SettingsError(f"{name}={raw!r} must be a number >= {lo}")
    if hi is not None and value > hi:
        raise SettingsError(f"{name}={raw!r} must be <= {hi}")
    return value


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    return _get(env, name) or default


def _choice(env: Mapping[str, str], name: str, default: str, options: tuple[str, ...], *, upper: bool = True) -> str:
    raw = _get(env, name)
    if raw is None:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in options:
        raise SettingsError(f"{name}={raw!r} must be one of {', '.join(options)}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")


def _csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _get(env, name)
    return tuple(p.strip() for p in raw.split(",") if p.strip()) if raw else ()


FILES_POLICIES = ("auto", "always", "never")
MEDIA_RESOLUTIONS = ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH")  # ULTRA_HIGH: per image part, Gemini 3 only
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EMULATOR_MODES = ("off", "embedded")  # GEMINI_EMULATOR

# What every entry point says when Gemini has neither a key nor an explicit emulator: a misspelt
# key variable must never turn into synthetic predictions.
NO_GEMINI_MESSAGE = ("Gemini is not configured: no API key in GEMINI_API_KEY or GOOGLE_API_KEY. Set one of them "
                     "for Gemini, or GEMINI_EMULATOR=embedded for the built-in emulator (synthetic test images only)")

def _tiling(env: Mapping[str, str]) -> str:
    """TILING: off (default) | auto | RxC, normalised (tiling/grid.py parse_tiling)."""
    from .tiling.grid import parse_tiling

    try:
        mode, shape = parse_tiling(_get(env, "TILING") or "off")
    except ValueError as exc:
        raise SettingsError(f"TILING: {exc}") from exc
    return f"{shape[0]}x{shape[1]}" if shape else mode


def _prices(env: Mapping[str, str]) -> tuple[tuple[str, float, float], ...]:
    from .gemini.pricing import parse_prices

    raw = _get(env, "GEMINI_PRICES")
    try:
        table = parse_prices(raw) if raw else {}
    except ValueError as exc:
        raise SettingsError(f"GEMINI_PRICES: {exc}") from exc
    return tuple((model, inp, out) for model, (inp, out) in table.items())


@dataclass(frozen=True)
class Settings:
    # Gemini
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    model: str = DEFAULT_MODEL  # boxes, points, classes, captions
    mask_model: str = DEFAULT_MASK_MODEL  # segmentation (BrushLabels / PolygonLabels)
    concurrency: int = 8
    files_policy: str = "auto"  # auto | always | never
    request_timeout: float = 60.0  # seconds, one Gemini call
    max_retries: int = 4
    max_cooldown: float = 60.0  # cap of the shared 429 cool-down, then one probe request (half-open)
    temperature: float | None = None  # None: the model family's recommended value
    media_resolution: str | None = None  # LOW | MEDIUM | HIGH | ULTRA_HIGH, None: the model default
    inline_limit_bytes: int = 20 * 1024 * 1024
    # Predictions
    predict_timeout: float = 90.0  # below Label Studio's ML_TIMEOUT_PREDICT (100 s)
    max_requests_per_task: int = 16  # a config needing more Gemini requests per task is refused
    max_pages: int = 50  # pages of a valueList image predicted per task; the rest are not sent (pages.py)
    max_dynamic_labels: int = 200  # labels from the task (value="$field"): a task with more fails alone
    model_version_suffix: str | None = None
    defaults: Defaults = Defaults()
    # Images
    image_max_side: int = 1536
    image_max_download_bytes: int = 50 * 1024 * 1024
    image_max_pixels: int = 100_000_000
    image_decode_budget: int = 100_000_000  # pixels being decoded at once, shared by the process's threads
    image_fetch_timeout: float = 30.0
    fetch_allow_private: bool = False
    fetch_allowlist: tuple[str, ...] = ()
    # Label Studio
    label_studio_url: str | None = None
    label_studio_api_key: str | None = field(default=None, repr=False)
    # Redis
    redis_url: str | None = None
    redis_prefix: str = "gemini-ls:"
    # Server
    host: str = "0.0.0.0"
    port: int = 9090
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = field(default=None, repr=False)
    max_request_bytes: int = 50 * 1024 * 1024
    log_level: str = "INFO"
    workers: int = 1
    threads: int = 8
    # Review loop (review/learning.py): learned parts, and the history a label needs first
    review_learn: tuple[str, ...] = ()
    review_min_samples: int = 10
    # Few-shot (review/fewshot.py): up to K reviewed annotations as worked examples in each request
    few_shot_examples: int = 0
    few_shot_max_tokens: int = 8000  # input tokens the examples may add to one request
    few_shot_cache: bool = True  # examples in a Gemini context cache when big enough (gemini/ctxcache.py)
    few_shot_cache_ttl: float = 600.0  # seconds; renewed while requests use it
    # The built-in emulator, only when asked for: GEMINI_EMULATOR=embedded and no API key (loudly announced)
    gemini_emulator: str = "off"  # off | embedded
    emulator_latency: float = 0.0
    # Jobs (jobs/): RQ on REDIS_URL, write-back to Label Studio, the shared Gemini quota
    job_chunk: int = 16  # tasks per RQ job
    job_timeout: float = 900.0  # seconds one RQ job may run
    job_retries: int = 3  # RQ retries of a job that failed or whose worker died
    job_heartbeat: float = 10.0  # seconds between a worker's heartbeats (a dead worker's job is retried after ~3x)
    serve_worker: bool = True  # `gemini-ls serve` with REDIS_URL also works the queue
    write_back: bool = True  # late /predict tasks written to Label Studio through its API
    writeback_chunk: int = 100  # predictions per POST /api/projects/{id}/import/predictions
    predict_answer_max: int = 20  # with write-back on: results in one /predict answer, the rest go through the API
    writeback_attempts: int = WRITE_ATTEMPTS  # the one retry setting of every write to Label Studio
    writeback_timeout: float = 30.0  # seconds per Label Studio API call
    gemini_rpm: int = 0  # requests per window per model, 0 = off
    gemini_tpm: int = 0  # input tokens per window per model, 0 = off
    gemini_rate_window: float = 60.0  # seconds (a minute; shorter for tests)

    @property
    def routing(self) -> ModelRouting:
        """Which model serves which request kind (deprecated names resolved), see gemini/models.py."""
        return ModelRouting.of(self.model, self.mask_model)
    # Batch API pre-labelling (batch/)
    batch_inline_limit_bytes: int = 8 * 1024 * 1024
    batch_poll_seconds: float = 5.0  # first batches.get wait; grows 1.5x up to batch_poll_max
    batch_poll_max: float = 60.0
    prices: tuple[tuple[str, float, float], ...] = ()  # (model, input, output) USD per 1M tokens, over gemini/pricing.py
    batch_discount: float = 0.5

    @property
    def price_overrides(self) -> dict[str, tuple[float, float]]:
        """GEMINI_PRICES as gemini/pricing.py takes it: model -> (input, output) USD per 1M tokens."""
        return {m: (i, o) for m, i, o in self.prices}

    @property
    def uses_emulator(self) -> bool:
        """The built-in emulator stands in for Gemini: asked for, and no key (a key always wins)."""
        return self.gemini_emulator == "embedded" and self.api_key is None

    @property
    def gemini_configured(self) -> bool:
        """A key, or the emulator asked for; otherwise nothing may answer as Gemini (NO_GEMINI_MESSAGE)."""
        return self.api_key is not None or self.uses_emulator

    @property
    def key_fingerprint(self) -> str:
        """A short, non-reversible tag of (API key, endpoint): safe in cache keys, never the key itself."""
        material = f"{self.api_key or ''}\x00{self.base_url or 'default'}".encode()
        return hashlib.sha256(material).hexdigest()[:16]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every variable parsed and validated the same way; a bad value is a SettingsError naming
        it. Defaults are the dataclass fields above (written once) and `Defaults`."""
        env = os.environ if env is None else env
        d = cls()
        review_learn = tuple(p.lower() for p in _csv(env, "REVIEW_LEARN"))
        if unknown := set(review_learn) - {"thresholds", "synonyms", "calibration"}:
            raise SettingsError(f"REVIEW_LEARN: unknown part(s) {', '.join(sorted(unknown))}; "
                                "known: thresholds, synonyms, calibration")
        defaults = Defaults(
            score_threshold=_float(env, "MODEL_SCORE_THRESHOLD", Defaults.score_threshold),
            max_objects=_int(env, "MODEL_MAX_OBJECTS", Defaults.max_objects, lo=1),
            mask_threshold=_int(env, "MODEL_MASK_THRESHOLD", Defaults.mask_threshold),
            polygon_tolerance=_float(env, "MODEL_POLYGON_TOLERANCE", Defaults.polygon_tolerance),
            min_area=_int(env, "MODEL_MIN_AREA", Defaults.min_area),
            tiling=_tiling(env),
            media_resolution=_choice(env, "GEMINI_MEDIA_RESOLUTION", "", MEDIA_RESOLUTIONS) or None,
        )
        temperature = _get(env, "GEMINI_TEMPERATURE")
        media_resolution = _get(env, "GEMINI_MEDIA_RESOLUTION")
        return cls(
            # google-genai itself prefers GOOGLE_API_KEY over GEMINI_API_KEY; we follow the SDK.
            api_key=_get(env, "GOOGLE_API_KEY") or _get(env, "GEMINI_API_KEY"),
            base_url=_get(env, "GEMINI_BASE_URL"),
            model=_str(env, "GEMINI_MODEL", d.model),
            mask_model=_str(env, "GEMINI_MASK_MODEL", d.mask_model),
            concurrency=_int(env, "GEMINI_CONCURRENCY", d.concurrency, lo=1),
            files_policy=_choice(env, "GEMINI_FILES", d.files_policy, FILES_POLICIES, upper=False),
            request_timeout=_float(env, "GEMINI_TIMEOUT", d.request_timeout, lo=0.1),
            max_retries=_int(env, "GEMINI_MAX_RETRIES", d.max_retries),
            max_cooldown=_float(env, "GEMINI_MAX_COOLDOWN", d.max_cooldown, lo=0.1),
            temperature=_float(env, "GEMINI_TEMPERATURE", 0.0, hi=2.0) if temperature is not None else d.temperature,
            media_resolution=(
                _choice(env, "GEMINI_MEDIA_RESOLUTION", "", MEDIA_RESOLUTIONS) if media_resolution is not None else d.media_resolution
            ),
            inline_limit_bytes=_int(env, "GEMINI_INLINE_LIMIT_BYTES", d.inline_limit_bytes, lo=1),
            predict_timeout=_float(env, "PREDICT_TIMEOUT", d.predict_timeout, lo=0.1),
            max_requests_per_task=_int(env, "MAX_REQUESTS_PER_TASK", d.max_requests_per_task, lo=1),
            max_pages=_int(env, "MAX_PAGES", d.max_pages, lo=1),
            max_dynamic_labels=_int(env, "MAX_DYNAMIC_LABELS", d.max_dynamic_labels, lo=1),
            model_version_suffix=_get(env, "MODEL_VERSION_SUFFIX"),
            defaults=defaults,
            image_max_side=_int(env, "IMAGE_MAX_SIDE", d.image_max_side, lo=64),
            image_max_download_bytes=_int(env, "IMAGE_MAX_DOWNLOAD_BYTES", d.image_max_download_bytes, lo=1),
            image_max_pixels=_int(env, "IMAGE_MAX_PIXELS", d.image_max_pixels, lo=1),
            image_decode_budget=_int(env, "IMAGE_DECODE_BUDGET", d.image_decode_budget, lo=1),
            image_fetch_timeout=_float(env, "IMAGE_FETCH_TIMEOUT", d.image_fetch_timeout, lo=0.1),
            fetch_allow_private=_bool(env, "FETCH_ALLOW_PRIVATE", d.fetch_allow_private),
            fetch_allowlist=_csv(env, "FETCH_ALLOWLIST"),
            label_studio_url=(_get(env, "LABEL_STUDIO_URL") or "").rstrip("/") or None,
            label_studio_api_key=_get(env, "LABEL_STUDIO_API_KEY"),
            redis_url=_get(env, "REDIS_URL"),
            redis_prefix=_str(env, "REDIS_PREFIX", d.redis_prefix),
            host=_str(env, "HOST", d.host),
            port=_int(env, "PORT", d.port, lo=1),
            basic_auth_user=_get(env, "BASIC_AUTH_USER"),
            basic_auth_pass=_get(env, "BASIC_AUTH_PASS"),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", d.max_request_bytes, lo=1024),
            log_level=_choice(env, "LOG_LEVEL", d.log_level, LOG_LEVELS),
            workers=_int(env, "WORKERS", d.workers, lo=1),
            threads=_int(env, "THREADS", d.threads, lo=1),
            gemini_emulator=_choice(env, "GEMINI_EMULATOR", d.gemini_emulator, EMULATOR_MODES, upper=False),
            emulator_latency=_float(env, "EMULATOR_LATENCY", d.emulator_latency),
            review_learn=review_learn,
            review_min_samples=_int(env, "REVIEW_LEARN_MIN_SAMPLES", d.review_min_samples, lo=1),
            few_shot_examples=_int(env, "FEW_SHOT_EXAMPLES", d.few_shot_examples),
            few_shot_max_tokens=_int(env, "FEW_SHOT_MAX_TOKENS", d.few_shot_max_tokens, lo=1),
            few_shot_cache=_bool(env, "FEW_SHOT_CACHE", d.few_shot_cache),
            few_shot_cache_ttl=_float(env, "FEW_SHOT_CACHE_TTL", d.few_shot_cache_ttl, lo=120.0),
            job_chunk=_int(env, "JOB_CHUNK", d.job_chunk, lo=1),
            job_timeout=_float(env, "JOB_TIMEOUT", d.job_timeout, lo=1.0),
            job_retries=_int(env, "JOB_RETRIES", d.job_retries),
            job_heartbeat=_float(env, "JOB_HEARTBEAT", d.job_heartbeat, lo=1.0),
            serve_worker=_bool(env, "SERVE_WORKER", d.serve_worker),
            write_back=_bool(env, "WRITE_BACK", d.write_back),
            writeback_chunk=_int(env, "WRITEBACK_CHUNK", d.writeback_chunk, lo=1),
            predict_answer_max=_int(env, "PREDICT_ANSWER_MAX", d.predict_answer_max, lo=1),
            writeback_attempts=_int(env, "WRITEBACK_ATTEMPTS", d.writeback_attempts, lo=1),
            writeback_timeout=_float(env, "WRITEBACK_TIMEOUT", d.writeback_timeout, lo=0.1),
            gemini_rpm=_int(env, "GEMINI_RPM", d.gemini_rpm),
            gemini_tpm=_int(env, "GEMINI_TPM", d.gemini_tpm),
            gemini_rate_window=_float(env, "GEMINI_RATE_WINDOW", d.gemini_rate_window, lo=1.0),
            batch_inline_limit_bytes=_int(env, "GEMINI_BATCH_INLINE_LIMIT_BYTES", d.batch_inline_limit_bytes, lo=0),
            batch_poll_seconds=_float(env, "GEMINI_BATCH_POLL_SECONDS", d.batch_poll_seconds, lo=0.01),
            batch_poll_max=_float(env, "GEMINI_BATCH_POLL_MAX", d.batch_poll_max, lo=0.01),
            prices=_prices(env),
            batch_discount=_float(env, "GEMINI_BATCH_DISCOUNT", d.batch_discount),
        )

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)


def log_gemini_choice(settings: Settings) -> None:
    """Once per start (gunicorn's master, a command): what answers as Gemini, when it is not plain."""
    log = logging.getLogger("gemini_ls")
    if not settings.gemini_configured:
        log.error("gemini-ls: %s", NO_GEMINI_MESSAGE)
    elif settings.api_key is not None and settings.gemini_emulator == "embedded":
        log.warning("gemini-ls: GEMINI_EMULATOR=embedded is ignored: a Gemini API key is set and wins")
