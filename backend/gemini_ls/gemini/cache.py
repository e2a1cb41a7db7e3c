"""Where uploaded Gemini file URIs are remembered, so every task, worker and replica reuses one upload.

Two implementations of one small protocol:

- `MemoryFileCache`: the embedded default when REDIS_URL is unset. One process only (each gunicorn
  worker has its own), thread-safe, lost on restart. Correct, just less sharing.
- `RedisFileCache`: shared by every worker and replica that uses the same Redis and prefix.

Keys (all under the configured prefix, e.g. "gemini-ls:"):

    {prefix}file:{fingerprint}:{sha256}   JSON FileRef, TTL = file expiry - safety margin
    {prefix}lock:{fingerprint}:{sha256}   random token of the uploader holding the lock (SET NX PX)

`{fingerprint}` is Settings.key_fingerprint (a hash of API key + endpoint): a file URI only works for
the key that uploaded it, so two keys never share an entry, and the key itself never reaches Redis.

Redis is an optimisation, never a dependency: any Redis error (down, timeout, OOM) makes the
operation a miss / no-op, counts metrics.cache_errors{op}, logs a rate-limited warning and opens a
short circuit breaker so a dead Redis costs one socket timeout per retry interval, not one per call.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import redis

from .. import redisconn
from ..metrics import Metrics

log = logging.getLogger(__name__)

FILE_LIFETIME_SECONDS = 48 * 3600  # Files API: files are deleted 48 h after upload
SAFETY_MARGIN_SECONDS = 3600  # stop using a URI an hour before Gemini deletes the file


@dataclass(frozen=True)
class FileRef:
    """What we need to reference an uploaded file again. `expiration` is epoch seconds (UTC)."""

    name: str  # "files/abc123"
    uri: str
    mime_type: str
    expiration: float
    size_bytes: int

    def to_json(self) -> str:
        # sort_keys: the same ref always serialises to the same string (compare-and-delete relies on it)
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> FileRef:
        data = json.loads(raw)
        return cls(
            name=str(data["name"]),
            uri=str(data["uri"]),
            mime_type=str(data["mime_type"]),
            expiration=float(data["expiration"]),
            size_bytes=int(data["size_bytes"]),
        )

    def ttl_seconds(self, now: float, margin: float = SAFETY_MARGIN_SECONDS) -> float:
        """How long the ref may still be handed out: until `margin` before Gemini deletes the file."""
        return self.expiration - margin - now


class FileCache(Protocol):
    """Keys are "{fingerprint}:{sha256}"; implementations add their own namespace."""

    def get(self, key: str) -> FileRef | None: ...

    def put(self, key: str, ref: FileRef, ttl_seconds: float) -> None: ...

    def delete(self, key: str, expected: FileRef | None = None) -> bool:
        """Remove the entry; with `expected`, only if it still holds exactly that ref (so a replica
        evicting a stale URI never deletes the fresh one another replica just uploaded)."""
        ...

    def lock(self, key: str, ttl_seconds: float) -> str | None:
        """Try to become the one uploader of `key`. A token when we hold the lock (or when the cache is
        unavailable, so nobody can coordinate: then every caller proceeds alone); None when someone
        else holds it."""
        ...

    def unlock(self, key: str, token: str) -> None:
        """Release the lock, only if `token` still owns it."""
        ...

    @property
    def available(self) -> bool:
        """False while the cache is known to be unreachable (callers may prefer not to upload)."""
        ...


# ---------------------------------------------------------------------------------------------------


class MemoryFileCache:
    """In-process cache, thread-safe. Expired entries and locks are dropped lazily on access."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._mutex = threading.Lock()
        self._entries: dict[str, tuple[FileRef, float]] = {}
        self._locks: dict[str, tuple[str, float]] = {}

    @property
    def available(self) -> bool:
        return True

    def healthy(self) -> bool:
        return True

    def get(self, key: str) -> FileRef | None:
        with self._mutex:
            item = self._entries.get(key)
            if item is None:
                return None
            if item[1] <= self._clock():
                del self._entries[key]
                return None
            return item[0]

    def put(self, key: str, ref: FileRef, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            return
        with self._mutex:
            self._entries[key] = (ref, self._clock() + ttl_seconds)

    def delete(self, key: str, expected: FileRef | None = None) -> bool:
        with self._mutex:
            item = self._entries.get(key)
            if item is None or (expected is not None and item[0] != expected):
                return False
            del self._entries[key]
            return True

    def lock(self, key: str, ttl_seconds: float) -> str | None:
        with self._mutex:
            now = self._clock()
            held = self._locks.get(key)
            if held is not None and held[1] > now:
                return None
            token = secrets.token_hex(16)
            self._locks[key] = (token, now + ttl_seconds)
            return token

    def unlock(self, key: str, token: str) -> None:
        with self._mutex:
            held = self._locks.get(key)
            if held is not None and held[0] == token:
                del self._locks[key]


# ---------------------------------------------------------------------------------------------------

# Compare-and-delete: only the owner of the lock (or a reader who saw exactly this value) may delete.
_DEL_IF_EQUALS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

BYPASS_TOKEN = "bypass"  # handed out while Redis is unavailable: proceed alone, unlock is a no-op


@dataclass
class _Breaker:
    """Tiny circuit breaker + warning rate limiter. Guarded by RedisFileCache._mutex."""

    retry_interval: float
    warn_interval: float
    open_until: float = 0.0
    last_warning: float = float("-inf")
    suppressed: int = 0
    failing: bool = False


class RedisFileCache:
    """The shared cache. Thread-safe (redis-py's connection pool is); safe across processes."""

    def __init__(
        self,
        url: str,
        prefix: str,
        metrics: Metrics,
        *,
        socket_timeout: float | None = None,
        retry_interval: float = 2.0,
        warn_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prefix = prefix
        self._metrics = metrics
        self._clock = clock
        # redisconn's `request` profile: short timeouts and no client-side retries, because every
        # Gemini request of a task waits on the cache; the process's Redis breaker applies too.
        # `socket_timeout` (tests): a client of its own with that timeout and a breaker of its own,
        # so its timings are not the process's.
        self._redis = redisconn.client(url, redisconn.REQUEST) if socket_timeout is None else redisconn.private_client(
            url, redisconn.REQUEST, socket_timeout=socket_timeout, breaker_of=redisconn.Breaker(retry_interval, clock))
        self._del_if_equals = self._redis.register_script(_DEL_IF_EQUALS)
        self._mutex = threading.Lock()
        self._breaker = _Breaker(retry_interval=retry_interval, warn_interval=warn_interval)

    # -- keys ---------------------------------------------------------------------------------------

    def file_key(self, key: str) -> str:
        return f"{self._prefix}file:{key}"

    def lock_key(self, key: str) -> str:
        return f"{self._prefix}lock:{key}"

    # -- breaker ------------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        with self._mutex:
            return self._clock() >= self._breaker.open_until

    def _skip(self, op: str) -> bool:
        """True (and counted) when the breaker is open: the op is bypassed without touching the network."""
        with self._mutex:
            if self._clock() < self._breaker.open_until:
                self._breaker.suppressed += 1
                skip = True
            else:
                skip = False
        if skip:
            self._metrics.cache_errors.labels(op=op).inc()
        return skip

    def _failed(self, op: str, exc: Exception) -> None:
        self._metrics.cache_errors.labels(op=op).inc()
        # A refused write (OOM, READONLY replica) says nothing about reads: don't open the breaker for it.
        connection_trouble = isinstance(exc, (redis.ConnectionError, redis.TimeoutError))
        with self._mutex:
            now = self._clock()
            b = self._breaker
            if connection_trouble:
                b.open_until = now + b.retry_interval
            b.failing = True
            if now - b.last_warning < b.warn_interval:
                b.suppressed += 1
                return
            suppressed, b.suppressed, b.last_warning = b.suppressed, 0, now
        # Never the URL (it may carry a password), only the error type and Redis's own message.
        log.warning(
            "file cache: Redis %s failed (%s: %s); bypassing the cache%s",
            op, type(exc).__name__, _short(exc),
            f" ({suppressed} more errors since the last warning)" if suppressed else "",
        )

    def _ok(self) -> None:
        with self._mutex:
            recovered = self._breaker.failing
            self._breaker.failing = False
            self._breaker.open_until = 0.0
        if recovered:
            log.warning("file cache: Redis answers again; using the shared cache")

    # -- operations ---------------------------------------------------------------------------------

    def get(self, key: str) -> FileRef | None:
        if self._skip("get"):
            return None
        try:
            raw: Any = self._redis.get(self.file_key(key))  # str | bytes | None (sync client; the stubs also allow async)
        except redis.RedisError as exc:
            self._failed("get", exc)
            return None
        self._ok()
        if raw is None:
            return None
        try:
            return FileRef.from_json(raw)
        except (ValueError, KeyError, TypeError):
            # Written by an incompatible version: a miss, and gone so it stops costing a parse.
            self.delete(key)
            return None

    def put(self, key: str, ref: FileRef, ttl_seconds: float) -> None:
        ttl_ms = int(ttl_seconds * 1000)
        if ttl_ms <= 0 or self._skip("put"):
            return
        try:
            self._redis.set(self.file_key(key), ref.to_json(), px=ttl_ms)
        except redis.RedisError as exc:
            self._failed("put", exc)
            return
        self._ok()

    def delete(self, key: str, expected: FileRef | None = None) -> bool:
        if self._skip("delete"):
            return False
        try:
            if expected is None:
                n = self._redis.delete(self.file_key(key))
            else:
                n = self._del_if_equals(keys=[self.file_key(key)], args=[expected.to_json()])
        except redis.RedisError as exc:
            self._failed("delete", exc)
            return False
        self._ok()
        return bool(n)

    def lock(self, key: str, ttl_seconds: float) -> str | None:
        if self._skip("lock"):
            return BYPASS_TOKEN
        token = secrets.token_hex(16)
        try:
            acquired = self._redis.set(self.lock_key(key), token, nx=True, px=max(1, int(ttl_seconds * 1000)))
        except redis.RedisError as exc:
            self._failed("lock", exc)
            return BYPASS_TOKEN
        self._ok()
        return token if acquired else None

    def unlock(self, key: str, token: str) -> None:
        if token == BYPASS_TOKEN or self._skip("unlock"):
            return
        try:
            self._del_if_equals(keys=[self.lock_key(key)], args=[token])
        except redis.RedisError as exc:
            # Harmless: the lock expires by itself after its TTL.
            self._failed("unlock", exc)
            return
        self._ok()

    def healthy(self) -> bool:
        """A live PING for /health (not the breaker's memory); never raises, counts nothing."""
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._redis.close()  # a shared client's pool reconnects on its next use


def _short(exc: Exception, limit: int = 200) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def make_file_cache(redis_url: str | None, prefix: str, metrics: Metrics) -> FileCache:
    """REDIS_URL set -> the shared Redis cache; unset -> the embedded in-process cache."""
    if redis_url:
        return RedisFileCache(redis_url, prefix, metrics)
    return MemoryFileCache()
