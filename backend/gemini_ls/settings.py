"""Every environment variable the backend reads, in one frozen value.

`Settings.from_env()` is called once at start-up; the value is passed down explicitly, so a test
can build its own `Settings(...)` without touching the process environment.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .labelconfig import Defaults


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


def _float(env: Mapping[str, str], name: str, default: float, lo: float = 0.0) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number") from exc
    if value < lo:
        raise SettingsError(f"{name}={raw!r} must be >= {lo}")
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


def _prices(env: Mapping[str, str]) -> tuple[tuple[str, float, float], ...]:
    from .batch.pricing import parse_prices

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
    model: str = "gemini-2.5-flash"
    concurrency: int = 8
    files_policy: str = "auto"  # auto | always | never
    request_timeout: float = 60.0  # seconds, one Gemini call
    max_retries: int = 4
    temperature: float | None = None  # None: the model family's recommended value
    media_resolution: str | None = None  # LOW | MEDIUM | HIGH, None: the model default
    inline_limit_bytes: int = 20 * 1024 * 1024
    # Predictions
    predict_timeout: float = 90.0  # below Label Studio's ML_TIMEOUT_PREDICT (100 s)
    model_version_suffix: str | None = None
    defaults: Defaults = Defaults()
    # Images
    image_max_side: int = 1536
    image_max_download_bytes: int = 50 * 1024 * 1024
    image_max_pixels: int = 100_000_000
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
    # Emulator fallback: no API key -> the built-in emulator answers (loudly announced)
    emulator_latency: float = 0.0
    # Batch API pre-labelling (batch/)
    batch_inline_limit_bytes: int = 8 * 1024 * 1024
    batch_poll_seconds: float = 5.0  # first batches.get wait; grows 1.5x up to batch_poll_max
    batch_poll_max: float = 60.0
    prices: tuple[tuple[str, float, float], ...] = ()  # (model, input, output) USD per 1M tokens, over batch/pricing.py
    batch_discount: float = 0.5

    @property
    def uses_emulator(self) -> bool:
        return self.api_key is None

    @property
    def key_fingerprint(self) -> str:
        """A short, non-reversible tag of (API key, endpoint): safe in cache keys, never the key itself."""
        material = f"{self.api_key or ''}\x00{self.base_url or 'default'}".encode()
        return hashlib.sha256(material).hexdigest()[:16]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        files_policy = (_get(env, "GEMINI_FILES", "auto") or "auto").lower()
        if files_policy not in ("auto", "always", "never"):
            raise SettingsError(f"GEMINI_FILES={files_policy!r} must be auto, always or never")
        media_resolution = _get(env, "GEMINI_MEDIA_RESOLUTION")
        if media_resolution is not None:
            media_resolution = media_resolution.upper()
            if media_resolution not in ("LOW", "MEDIUM", "HIGH"):
                raise SettingsError("GEMINI_MEDIA_RESOLUTION must be LOW, MEDIUM or HIGH")
        temperature = _get(env, "GEMINI_TEMPERATURE")
        defaults = Defaults(
            score_threshold=_float(env, "MODEL_SCORE_THRESHOLD", Defaults.score_threshold),
            max_objects=_int(env, "MODEL_MAX_OBJECTS", Defaults.max_objects, lo=1),
            mask_threshold=_int(env, "MODEL_MASK_THRESHOLD", Defaults.mask_threshold),
            polygon_tolerance=_float(env, "MODEL_POLYGON_TOLERANCE", Defaults.polygon_tolerance),
            min_area=_int(env, "MODEL_MIN_AREA", Defaults.min_area),
        )
        return cls(
            # google-genai itself prefers GOOGLE_API_KEY over GEMINI_API_KEY; we follow the SDK.
            api_key=_get(env, "GOOGLE_API_KEY") or _get(env, "GEMINI_API_KEY"),
            base_url=_get(env, "GEMINI_BASE_URL"),
            model=_get(env, "GEMINI_MODEL", "gemini-2.5-flash") or "gemini-2.5-flash",
            concurrency=_int(env, "GEMINI_CONCURRENCY", 8, lo=1),
            files_policy=files_policy,
            request_timeout=_float(env, "GEMINI_TIMEOUT", 60.0, lo=0.1),
            max_retries=_int(env, "GEMINI_MAX_RETRIES", 4),
            temperature=float(temperature) if temperature is not None else None,
            media_resolution=media_resolution,
            inline_limit_bytes=_int(env, "GEMINI_INLINE_LIMIT_BYTES", 20 * 1024 * 1024, lo=1),
            predict_timeout=_float(env, "PREDICT_TIMEOUT", 90.0, lo=0.1),
            model_version_suffix=_get(env, "MODEL_VERSION_SUFFIX"),
            defaults=defaults,
            image_max_side=_int(env, "IMAGE_MAX_SIDE", 1536, lo=64),
            image_max_download_bytes=_int(env, "IMAGE_MAX_DOWNLOAD_BYTES", 50 * 1024 * 1024, lo=1),
            image_max_pixels=_int(env, "IMAGE_MAX_PIXELS", 100_000_000, lo=1),
            image_fetch_timeout=_float(env, "IMAGE_FETCH_TIMEOUT", 30.0, lo=0.1),
            fetch_allow_private=_bool(env, "FETCH_ALLOW_PRIVATE", False),
            fetch_allowlist=_csv(env, "FETCH_ALLOWLIST"),
            label_studio_url=(_get(env, "LABEL_STUDIO_URL") or "").rstrip("/") or None,
            label_studio_api_key=_get(env, "LABEL_STUDIO_API_KEY"),
            redis_url=_get(env, "REDIS_URL"),
            redis_prefix=_get(env, "REDIS_PREFIX", "gemini-ls:") or "gemini-ls:",
            host=_get(env, "HOST", "0.0.0.0") or "0.0.0.0",
            port=_int(env, "PORT", 9090, lo=1),
            basic_auth_user=_get(env, "BASIC_AUTH_USER"),
            basic_auth_pass=_get(env, "BASIC_AUTH_PASS"),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", 50 * 1024 * 1024, lo=1024),
            log_level=(_get(env, "LOG_LEVEL", "INFO") or "INFO").upper(),
            workers=_int(env, "WORKERS", 1, lo=1),
            threads=_int(env, "THREADS", 8, lo=1),
            emulator_latency=_float(env, "EMULATOR_LATENCY", 0.0),
            batch_inline_limit_bytes=_int(env, "GEMINI_BATCH_INLINE_LIMIT_BYTES", 8 * 1024 * 1024, lo=0),
            batch_poll_seconds=_float(env, "GEMINI_BATCH_POLL_SECONDS", 5.0, lo=0.01),
            batch_poll_max=_float(env, "GEMINI_BATCH_POLL_MAX", 60.0, lo=0.01),
            prices=_prices(env),
            batch_discount=_float(env, "GEMINI_BATCH_DISCOUNT", 0.5),
        )

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)
