"""Every Redis client of the process: one table of profiles, one factory, one circuit breaker.

Nothing else in gemini_ls builds a Redis client (the `limits` library's storage included: see
`limits_storage`). A client is made once per (URL, profile) per process and shared.

| profile        | connect | socket | retries     | health check | replies | breaker |
|----------------|---------|--------|-------------|--------------|---------|---------|
| `request`      | 0.25 s  | 0.5 s  | none        | off          | bytes   | obeys   |
| `request-text` | 0.25 s  | 0.5 s  | none        | off          | str     | obeys   |
| `job`          | 5 s     | 30 s   | 1 (0.5-2 s) | 30 s         | bytes   | reports |
| `job-text`     | 5 s     | 30 s   | 1 (0.5-2 s) | 30 s         | str     | reports |
| `worker`       | 5 s     | 30 s   | 1 (0.5-2 s) | 30 s         | bytes   | reports |

* `request`: whatever /predict, /webhook, /metrics or /health wait on: the server's outcome store,
  task claims and a click's hand-off to RQ, the Files API cache, the review ledger, few-shot usage,
  the shared Gemini quota and cool-down (the `limits` storage gets the same options).
* `request-text`: /metrics' Batch API job counts.
* `job`: `prelabel`, job chunks' claims and job store (RQ needs bytes), CLI reports.
* `job-text`: the Batch API job store (`gemini-ls batch`).
* `worker`: an RQ worker's own pool (RQ raises its socket timeout above its blocking dequeue, which
  must not leak into other clients).

Why: with Redis frozen (SIGSTOP: the kernel still accepts connections, nobody answers) a 30 s
socket timeout retried three times by redis-py's default policy held each /predict task for minutes.
The request path may lose at most a fraction of a second to a Redis that does not answer; jobs may
wait longer, but never forever.

The breaker (one per Redis URL per process): a connection error or timeout on any client opens it
for BREAKER_SECONDS; while open, `request` clients raise `BreakerOpen` (a `redis.ConnectionError`, so
every caller's existing "Redis away" path runs) without touching the network, and the caller
behaves as without Redis. When the time is up, ONE call goes through as the probe (the others still
fail fast); its success closes the breaker, its failure opens it again. Job clients are not held back
(a job may wait), but their errors and successes count as evidence. The state is derived from the
open-until time and the probe flag under one lock; /health reports it and /metrics has
`gemini_ls_redis_breaker_open` (gauge) and `gemini_ls_redis_breaker_trips_total` /
`gemini_ls_redis_breaker_refused_total` (counters).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

if TYPE_CHECKING:
    from limits.storage import RedisStorage

log = logging.getLogger("gemini_ls.redis")

BREAKER_SECONDS = 2.0  # as long as the file cache's own retry interval always was
T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    name: str
    connect_timeout: float
    socket_timeout: float
    retries: int  # redis-py retries of a command after a connection error or timeout
    health_check_interval: int
    decode: bool  # str replies (True) or bytes (RQ needs bytes)
    obeys_breaker: bool  # fail fast while the breaker is open


REQUEST = Profile("request", 0.25, 0.5, 0, 0, decode=False, obeys_breaker=True)
REQUEST_TEXT = Profile("request-text", 0.25, 0.5, 0, 0, decode=True, obeys_breaker=True)
JOB = Profile("job", 5.0, 30.0, 1, 30, decode=False, obeys_breaker=False)
JOB_TEXT = Profile("job-text", 5.0, 30.0, 1, 30, decode=True, obeys_breaker=False)
WORKER = Profile("worker", 5.0, 30.0, 1, 30, decode=False, obeys_breaker=False)
PROFILES = {p.name: p for p in (REQUEST, REQUEST_TEXT, JOB, JOB_TEXT, WORKER)}


class BreakerOpen(redis.ConnectionError):
    """Raised instead of asking a Redis that recently did not answer."""


class Breaker:
    """Closed -> (connection error / timeout) -> open for `open_seconds` -> half-open: one probe."""

    def __init__(self, open_seconds: float = BREAKER_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.open_seconds = open_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0: closed
        self._probing = False
        self._trips = 0
        self._refused = 0
        self._last_error = ""

    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if not self._open_until:
            return "closed"
        return "open" if self._clock() < self._open_until else "half_open"

    def allow(self) -> bool:
        """May a call that obeys the breaker go to Redis now? (Half-open: the first one, as the probe.)"""
        with self._lock:
            state = self._state()
            if state == "closed" or (state == "half_open" and not self._probing):
                self._probing = state == "half_open"
                return True
            self._refused += 1
            return False

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            tripped = self._state() == "closed"
            self._trips += tripped
            self._open_until = self._clock() + self.open_seconds
            self._probing = False
            self._last_error = type(exc).__name__
        if tripped:  # never the URL (it may carry a password)
            log.warning("Redis did not answer (%s: %s): the request path goes without Redis for %.1f s, then probes",
                        type(exc).__name__, str(exc)[:200], self.open_seconds)

    def succeeded(self) -> None:
        with self._lock:
            recovered = bool(self._open_until)
            self._open_until, self._probing = 0.0, False
        if recovered:
            log.warning("Redis answers again: the request path uses it again")

    def settled(self) -> None:
        """The call ended some other way (Redis answered with an error, or a bug): no verdict."""
        with self._lock:
            self._probing = False

    def status(self) -> dict[str, Any]:
        with self._lock:
            state = self._state()
            left = max(0.0, self._open_until - self._clock()) if state == "open" else 0.0
            return {"state": state, "seconds_left": round(left, 2), "open_seconds": self.open_seconds,
                    "trips": self._trips, "refused": self._refused, "last_error": self._last_error or None}


def _guarded(breaker: Breaker, obey: bool, call: Callable[[], T]) -> T:
    if obey and not breaker.allow():
        raise BreakerOpen(f"Redis circuit open for {breaker.open_seconds:.1f} s after it did not answer")
    try:
        result = call()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        breaker.failed(exc)
        raise
    except BaseException:
        breaker.settled()
        raise
    breaker.succeeded()
    return result


class GuardedPipeline(Pipeline):
    """A pipeline whose network round trips (WATCH-mode commands, execute) go through the breaker."""

    breaker: Breaker
    obey: bool

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        return _guarded(self.breaker, self.obey, lambda: super(GuardedPipeline, self).immediate_execute_command(*args, **options))

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        return _guarded(self.breaker, self.obey, lambda: super(GuardedPipeline, self).execute(raise_on_error))


class GuardedRedis(redis.Redis):
    """redis.Redis whose every command goes through the process breaker of its URL."""

    breaker: Breaker
    obey: bool

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return _guarded(self.breaker, self.obey, lambda: super(GuardedRedis, self).execute_command(*args, **options))

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> GuardedPipeline:
        pipe = GuardedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.breaker, pipe.obey = self.breaker, self.obey
        return pipe


def options(profile: Profile) -> dict[str, Any]:
    """The redis-py keyword arguments of a profile (also given to the `limits` storage)."""
    backoff = NoBackoff() if not profile.retries else ExponentialBackoff(cap=2.0, base=0.5)
    return {
        "socket_connect_timeout": profile.connect_timeout,
        "socket_timeout": profile.socket_timeout,
        "retry": Retry(backoff, profile.retries),
        "health_check_interval": profile.health_check_interval,
        "decode_responses": profile.decode,
    }


_lock = threading.Lock()
_clients: dict[tuple[str, str], GuardedRedis] = {}
_breakers: dict[str, Breaker] = {}


def _reset_after_fork() -> None:
    # a lock held by another thread at fork() would never be released in the child
    global _lock
    _lock = threading.Lock()
    for b in _breakers.values():
        b._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def breaker(url: str) -> Breaker:
    """This process's breaker for the Redis at `url`."""
    with _lock:
        found = _breakers.get(url)
        if found is None:
            found = _breakers[url] = Breaker()
        return found


def client(url: str, profile: Profile = REQUEST) -> GuardedRedis:
    """The process's client of `profile` for `url` (made at first use, then shared)."""
    key = (url, profile.name)
    with _lock:
        found = _clients.get(key)
    if found is not None:
        return found
    made = private_client(url, profile)
    with _lock:
        return _clients.setdefault(key, made)


def private_client(url: str, profile: Profile = REQUEST, *, breaker_of: Breaker | None = None,
                   socket_timeout: float | None = None) -> GuardedRedis:
    """A client of its own (not shared): for an owner that needs its own timings (tests) or its own pool."""
    kwargs = options(profile)
    if socket_timeout is not None:
        kwargs["socket_timeout"] = kwargs["socket_connect_timeout"] = socket_timeout
    made = GuardedRedis(connection_pool=redis.ConnectionPool.from_url(url, **kwargs), retry=kwargs["retry"])
    made.breaker = breaker_of or breaker(url)
    made.obey = profile.obeys_breaker
    return made


def limits_storage(url: str, key_prefix: str, profile: Profile = REQUEST) -> RedisStorage:
    """The `limits` library's Redis storage for the shared quota, with the profile's timeouts and
    retries (it builds its own redis.Redis from these options: its calls are guarded by SharedGate,
    which consults `breaker(url)` before each and falls back to its in-memory window)."""
    from limits.storage import RedisStorage

    return RedisStorage(url, key_prefix=key_prefix, **options(profile))


def status(url: str | None) -> dict[str, Any] | None:
    return breaker(url).status() if url else None


class BreakerCollector:
    """The breaker's gauge and counters at scrape time, like the other scrape-time collectors
    (review/collector.py, batch/metrics.py): this process's breaker for `url`."""

    def __init__(self, url: str) -> None:
        self._url = url

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = breaker(self._url).status()
        yield GaugeMetricFamily("gemini_ls_redis_breaker_open",
                                "1 while this process goes without Redis on the request path (0.5 = half-open probe)",
                                value=dict(closed=0, open=1, half_open=0.5)[s["state"]])
        yield CounterMetricFamily("gemini_ls_redis_breaker_trips", "Times Redis stopped answering and the breaker opened",
                                  value=s["trips"])
        yield CounterMetricFamily("gemini_ls_redis_breaker_refused", "Redis calls answered 'unavailable' without asking Redis",
                                  value=s["refused"])


def metrics_text(url: str | None) -> bytes:
    """The breaker's metrics in the Prometheus text format (empty without REDIS_URL)."""
    if not url:
        return b""
    registry = CollectorRegistry()
    registry.register(BreakerCollector(url))
    return generate_latest(registry)
