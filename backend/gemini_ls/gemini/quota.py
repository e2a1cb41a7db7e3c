"""One Gemini quota for every process: requests and input tokens per window per model, and a 429's
cool-down, shared through Redis by every server worker, replica and job worker.

`SharedGate` extends gemini/rategate.py's `RateGate` (the caller asks it before every
attempt and tells it about every 429), so the retry policy itself is untouched:

* GEMINI_RPM: a moving window from the `limits` library (its Redis storage: one Lua script per
  hit, atomic across processes; in memory without REDIS_URL). The window is GEMINI_RATE_WINDOW
  (60 s) plus a 1 s guard for the time between the limiter and Gemini's own clock, so Gemini never
  counts more than GEMINI_RPM in any window.
* GEMINI_TPM: input tokens per window. A call only starts while the window's spent tokens are
  under the limit, and is charged with the prompt tokens Gemini reports (the size of an answer is
  not known before it).
* 429 RESOURCE_EXHAUSTED: the retryDelay is written to Redis as an until-time; every process waits
  it out before its next call, not only the one that saw it.

Redis is asked through redisconn.py's profiles and breaker: while the breaker is open, the windows
are this process's own (as without REDIS_URL) and the shared cool-down is skipped.

A wait that would pass the task's deadline gives up at once with a rate-limit GeminiError.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import redis

from .. import redisconn
from ..metrics import Metrics
from ..redisconn import REQUEST, Profile
from ..settings import Settings
from .errors import GeminiError
from .rategate import RateGate

log = logging.getLogger(__name__)

GUARD_SECONDS = 1
POLL_CAP = 0.5  # seconds between looks at a full window
T = TypeVar("T")

if TYPE_CHECKING:
    from limits.strategies import MovingWindowRateLimiter

_EXTEND = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
"""


@dataclass(frozen=True)
class QuotaWindow:
    model: str
    requests: int | None  # in the current window (None: GEMINI_RPM off)
    rpm: int | None
    input_tokens: int | None  # in the current window (None: GEMINI_TPM off)
    tpm: int | None
    cooldown_seconds: float  # the shared 429 cool-down left for this model (0: none)


class SharedGate(RateGate):
    def __init__(self, settings: Settings, metrics: Metrics, *, client: redis.Redis | None = None, profile: Profile = REQUEST,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        """`profile`: the Redis profile (redisconn.py): `request` in the server, where a Redis that does
        not answer must cost a fraction of a second, after which the in-memory window stands in for the
        shared one while the breaker is open."""
        from limits import RateLimitItemPerSecond
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.settings = settings
        self.metrics = metrics
        super().__init__(clock=clock, sleep=sleep, max_cooldown=settings.max_cooldown, probe_lease=probe_lease(settings))
        self._model = settings.model
        window = int(round(settings.gemini_rate_window)) + GUARD_SECONDS
        self._rpm = RateLimitItemPerSecond(settings.gemini_rpm, window) if settings.gemini_rpm else None
        self._tpm = RateLimitItemPerSecond(settings.gemini_tpm, window) if settings.gemini_tpm else None
        self._redis = client
        self._local = MovingWindowRateLimiter(MemoryStorage())  # this process alone: no Redis, or Redis away
        self._shared: MovingWindowRateLimiter | None = None
        self._breaker: redisconn.Breaker | None = None
        if settings.redis_url:
            if self._redis is None:
                self._redis = redisconn.client(settings.redis_url, profile)
            self._breaker = redisconn.breaker(settings.redis_url)
            prefix = f"{settings.redis_prefix}limits"
            self._shared = MovingWindowRateLimiter(redisconn.limits_storage(settings.redis_url, prefix, profile))
            self._extend = self._redis.register_script(_EXTEND)
        self._cooldown_prefix = f"{settings.redis_prefix}cooldown:{settings.key_fingerprint}:"

    def _limit(self, call: Callable[[MovingWindowRateLimiter], T]) -> T:
        """`call` on the shared window, or on this process's own while Redis does not answer (the
        `limits` storage is a client of its own: the breaker is consulted here, before each call)."""
        shared, breaker = self._shared, self._breaker
        if shared is None or breaker is None or not breaker.allow():
            return call(self._local)
        try:
            result = call(shared)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            breaker.failed(exc)
            return call(self._local)
        except (redis.RedisError, OSError) as exc:
            breaker.settled()
            log.warning("shared Gemini quota: Redis error (%s); this process counts alone for this call", exc)
            return call(self._local)
        breaker.succeeded()
        return result

    def describe(self) -> dict:
        return {"rpm": self.settings.gemini_rpm or None, "tpm": self.settings.gemini_tpm or None,
                "window_seconds": self.settings.gemini_rate_window, "shared": bool(self.settings.redis_url)}

    def windows(self, models: Sequence[str]) -> list[QuotaWindow]:
        """The jobs page's view of the shared state, read only: per model, the requests and input
        tokens in the current window against GEMINI_RPM/GEMINI_TPM and the shared 429 cool-down left."""
        def used(item: Any, model: str) -> int | None:
            if item is None:
                return None
            return int(item.amount - self._limit(lambda lim: lim.get_window_stats(item, model)).remaining)

        out = []
        for model in models:
            used_r, used_t = used(self._rpm, model), used(self._tpm, model)
            left = 0.0
            if self._redis is not None:
                raw = cast("bytes | None", self._redis.get(self._cooldown_prefix + model))
                left = max(0.0, float(raw) - time.time()) if raw else 0.0
            out.append(QuotaWindow(model, used_r, self.settings.gemini_rpm or None, used_t, self.settings.gemini_tpm or None,
                                   round(left, 1)))
        return out

    def cool_down(self, seconds: float, model: str | None = None) -> float:
        capped = super().cool_down(seconds, model)  # GEMINI_MAX_COOLDOWN applies to the shared one too
        if self._redis is not None:
            until = time.time() + capped
            try:
                key = self._cooldown_prefix + (model or self._model)
                self._extend(keys=[key], args=[f"{until:.3f}", max(1, int(capped * 1000) + 1000)])
            except (redis.RedisError, OSError) as exc:  # Redis down: this process still cools down
                log.warning("could not share the Gemini cool-down through Redis: %s", exc)
        return capped

    def _give_up(self, what: str, seconds: float) -> GeminiError:
        return GeminiError(f"{what}: the next slot is {seconds:.1f} s away, later than this request may wait",
                           status=429, retryable=True, reason="rate_limited")

    def _wait(self, limit: str, seconds: float, deadline: float) -> None:
        if self._clock() + seconds > deadline:
            raise self._give_up(f"shared Gemini {limit} quota exhausted", seconds)
        self.metrics.limiter_waits.labels(limit).inc()
        self.metrics.limiter_wait_seconds.inc(seconds)
        self._sleep(seconds)

    def _shared_cooldown(self, deadline: float, model: str) -> None:
        if self._redis is None:
            return
        try:
            raw = cast("bytes | None", self._redis.get(self._cooldown_prefix + model))  # redis-py types sync and async alike
        except (redis.RedisError, OSError):  # Redis down: this process's own cool-down still holds
            return
        left = float(raw) - time.time() if raw else 0.0
        if left > 0:
            self._wait("cooldown", left, deadline)

    def wait(self, deadline: float, model: str | None = None) -> bool:
        """Gemini's quotas are per model: each model routed to (GEMINI_MODEL, GEMINI_MASK_MODEL, a
        control's model_name) has its own GEMINI_RPM / GEMINI_TPM window and shared cool-down."""
        model = model or self._model
        probe = super().wait(deadline, model)  # this process's own circuit (half-open probe included)
        self._shared_cooldown(deadline, model)
        tpm, rpm = self._tpm, self._rpm
        while tpm is not None and not self._limit(lambda lim: lim.test(tpm, model)):
            stats = self._limit(lambda lim: lim.get_window_stats(tpm, model))
            self._wait("tpm", min(POLL_CAP * 4, max(0.05, stats.reset_time - time.time())), deadline)
        while rpm is not None and not self._limit(lambda lim: lim.hit(rpm, model)):
            stats = self._limit(lambda lim: lim.get_window_stats(rpm, model))
            self._wait("rpm", min(POLL_CAP, max(0.02, stats.reset_time - time.time())), deadline)
        return probe

    def charge(self, prompt_tokens: int, model: str | None = None) -> None:
        """After a call: its input tokens count against that model's GEMINI_TPM."""
        tpm, model = self._tpm, model or self._model
        if tpm is not None and prompt_tokens > 0:
            self._limit(lambda lim: lim.hit(tpm, model, cost=min(prompt_tokens, self.settings.gemini_tpm)))


def probe_lease(settings: Settings) -> float:
    """How long a silent half-open probe holds the gate: one Gemini call and a margin."""
    return settings.request_timeout + 5


def make_gate(settings: Settings, metrics: Metrics, profile: Profile = REQUEST) -> RateGate | SharedGate:
    """The plain per-process gate unless a limit is set or there is a Redis to share cool-downs through."""
    if settings.gemini_rpm or settings.gemini_tpm or settings.redis_url:
        return SharedGate(settings, metrics, profile=profile)
    return RateGate(max_cooldown=settings.max_cooldown, probe_lease=probe_lease(settings))
