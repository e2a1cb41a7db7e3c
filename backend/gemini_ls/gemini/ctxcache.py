"""Few-shot examples in an explicit Gemini context cache: sent once, referenced by every task.

The examples of a model_version are the same prefix (system instruction + example turns) for every
task of a request kind, so instead of re-sending them (and paying the full input rate) each time,
they go into a `cachedContents` resource (google-genai `client.caches.create`) and the request names
it (`cached_content`); Gemini bills the cached tokens at a tenth of the input rate plus storage per
hour (gemini/pricing.py, docs/gemini-facts.md#context-caching).

- One cache per (API key, model, example set tag, digest of the cached contents), its name shared
  through Redis (or this process's memory without REDIS_URL), so every worker and replica reuses it:

      {prefix}ctxcache:{key}        JSON CacheEntry (name, expiry, tokens), Redis TTL = the cache's
      {prefix}ctxcache:tag:{tag}    set of the keys made for an example set (deleted at job end)

  Two replicas racing to create the same cache: the first SET NX wins, the loser deletes its own.
- Below the model's minimum cacheable size (`min_cache_tokens`) nothing is created: the examples go
  inline as before. A failed caches.create is logged and the examples go inline for a while
  (RETRY_SECONDS): never a failed task.
- The TTL (FEW_SHOT_CACHE_TTL) is renewed (caches.update) when a request finds less than half of it
  left, so a cache lives while a job sends requests, and ends on its own TTL after the last one;
  `release(tag)` deletes a version's caches when its job ends (jobs/work.py).
- A request Gemini rejects because its cache is gone (expired, deleted) is retried with the examples
  inline, and the entry is evicted (gemini/gateway.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import redis
from google.genai import types

from .. import redisconn

log = logging.getLogger(__name__)

# The Gemini API's minimum input tokens of a context cache, per model (ai.google.dev/gemini-api/docs/
# caching, "Min token limit": 3.x Flash and 3.1 Pro 4,096, 2.5 Flash and 2.5 Pro 2,048); the
# longest prefix a model's name starts with decides, anything else gets the largest figure.
MIN_CACHE_TOKENS: tuple[tuple[str, int], ...] = (("gemini-2.5", 2048), ("gemini-3", 4096))
DEFAULT_MIN_CACHE_TOKENS = 4096
RETRY_SECONDS = 60.0  # after a failed caches.create, the examples go inline this long before trying again
MARGIN_SECONDS = 30.0  # never reference a cache this close to its expiry: renew or recreate first


def min_cache_tokens(model: str) -> int:
    name = model.strip().lower().rsplit("/", 1)[-1]
    matches = [(prefix, n) for prefix, n in MIN_CACHE_TOKENS if name.startswith(prefix)]
    return max(matches, key=lambda m: len(m[0]))[1] if matches else DEFAULT_MIN_CACHE_TOKENS


def contents_digest(system: str | None, contents: Sequence[types.Content]) -> str:
    """A digest of what the cache holds: the system instruction and the example turns as the SDK
    would send them (file URIs included: a re-uploaded example image is a different prefix)."""
    payload = {"system": system or "", "contents": [c.model_dump(mode="json", exclude_none=True) for c in contents]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def cache_key(fingerprint: str, model: str, tag: str, digest: str) -> str:
    """The shared name of one cache: per API key (a cache only works for the key that made it), model,
    example set and contents."""
    return f"{fingerprint}:{model.rsplit('/', 1)[-1]}:{tag}:{digest}"


@dataclass(frozen=True)
class CacheEntry:
    name: str  # "cachedContents/abc123"
    expire: float  # epoch seconds
    tokens: int  # the cache's total_token_count

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> CacheEntry:
        d = json.loads(raw)
        return cls(str(d["name"]), float(d["expire"]), int(d["tokens"]))


class CacheStore(Protocol):
    def get(self, key: str) -> CacheEntry | None: ...
    def add(self, key: str, entry: CacheEntry, tag: str) -> CacheEntry: ...  # the entry that won
    def put(self, key: str, entry: CacheEntry) -> None: ...
    def drop(self, key: str, name: str) -> None: ...  # only if it still names `name`
    def take_tag(self, tag: str) -> list[CacheEntry]: ...  # the tag's entries, forgotten


class MemoryCacheStore:
    """Without REDIS_URL: this process's caches only."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._d: dict[str, CacheEntry] = {}
        self._tags: dict[str, set[str]] = {}
        self._clock = clock

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            e = self._d.get(key)
            return e if e is not None and e.expire > self._clock() else None

    def add(self, key: str, entry: CacheEntry, tag: str) -> CacheEntry:
        with self._lock:
            known = self._d.get(key)
            if known is not None and known.expire > self._clock():
                return known
            self._d[key] = entry
            self._tags.setdefault(tag, set()).add(key)
            return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        with self._lock:
            self._d[key] = entry

    def drop(self, key: str, name: str) -> None:
        with self._lock:
            if (e := self._d.get(key)) is not None and e.name == name:
                del self._d[key]

    def take_tag(self, tag: str) -> list[CacheEntry]:
        with self._lock:
            return [e for k in self._tags.pop(tag, set()) if (e := self._d.pop(k, None)) is not None]


class RedisCacheStore:
    """Shared by every worker and replica on the same Redis and prefix (see the module doc)."""

    def __init__(self, client: Any, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._r = client
        self._p = f"{prefix}ctxcache:"
        self._clock = clock

    def _ttl_ms(self, entry: CacheEntry) -> int:
        return max(1, int((entry.expire - self._clock()) * 1000))

    def get(self, key: str) -> CacheEntry | None:
        raw = self._r.get(self._p + key)
        return CacheEntry.from_json(raw) if raw else None

    def add(self, key: str, entry: CacheEntry, tag: str) -> CacheEntry:
        pipe = self._r.pipeline()
        pipe.set(self._p + key, entry.to_json(), nx=True, px=self._ttl_ms(entry))
        pipe.sadd(self._p + "tag:" + tag, key)
        pipe.expire(self._p + "tag:" + tag, 7 * 24 * 3600)  # a tag whose job never ended must not stay forever
        won, _, _ = pipe.execute()
        if won:
            return entry
        raw = self._r.get(self._p + key)
        return CacheEntry.from_json(raw) if raw else entry

    def put(self, key: str, entry: CacheEntry) -> None:
        self._r.set(self._p + key, entry.to_json(), px=self._ttl_ms(entry))

    def drop(self, key: str, name: str) -> None:
        raw = self._r.get(self._p + key)
        if raw and CacheEntry.from_json(raw).name == name:
            self._r.delete(self._p + key)

    def take_tag(self, tag: str) -> list[CacheEntry]:
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in self._r.smembers(self._p + "tag:" + tag)]
        out = []
        for key in keys:
            raw = self._r.get(self._p + key)
            if raw:
                out.append(CacheEntry.from_json(raw))
        pipe = self._r.pipeline()
        for key in keys:
            pipe.delete(self._p + key)
        pipe.delete(self._p + "tag:" + tag)
        pipe.execute()
        return out


def make_cache_store(redis_url: str | None, prefix: str) -> CacheStore:
    if not redis_url:
        return MemoryCacheStore()
    return RedisCacheStore(redisconn.client(redis_url, redisconn.REQUEST), prefix)


def _epoch(value: Any, fallback: float) -> float:
    ts = getattr(value, "timestamp", None)
    return float(ts()) if callable(ts) else fallback


class ContextCaches:
    """The context caches of one process (google-genai `client.caches`), shared through `store`."""

    def __init__(self, client: Any, store: CacheStore, settings: Any, metrics: Any,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._flights: dict[str, threading.Lock] = {}
        self._failed: dict[str, float] = {}  # key -> until when the examples go inline after a failure

    @property
    def ttl(self) -> float:
        return float(self.settings.few_shot_cache_ttl)

    def _count(self, result: str) -> None:
        self.metrics.context_cache.labels(result=result).inc()

    def _store(self, call: Callable[[], Any], default: Any) -> Any:
        try:
            return call()
        except (redis.RedisError, OSError) as exc:  # Redis away: this process goes on alone
            log.debug("context cache store: %s", exc)
            return default

    def reference(self, model: str, system: str | None, contents: Sequence[types.Content], tokens: int, tag: str | None,
                  deadline: float) -> str | None:
        """The name of a cache holding `system` + `contents` on `model`, made or renewed as needed; None:
        send them inline (too small for the model, no tag, caching off or failing)."""
        if not contents or not tag:
            return None
        if tokens < min_cache_tokens(model):
            self._count("too_small")
            return None
        key = cache_key(self.settings.key_fingerprint, model, tag, contents_digest(system, contents))
        with self._lock:
            if self._failed.get(key, 0.0) > self._clock():
                return None
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:  # the tasks of a chunk start together: one of them creates, the others wait for it
            with self._lock:
                if self._failed.get(key, 0.0) > self._clock():  # it failed while we waited
                    return None
            try:
                return self._reference(key, model, system, contents, tag, deadline)
            finally:
                with self._lock:
                    self._flights.pop(key, None)

    def _reference(self, key: str, model: str, system: str | None, contents: Sequence[types.Content], tag: str,
                   deadline: float) -> str | None:
        entry = self._store(lambda: self.store.get(key), None)
        now = self._clock()
        if entry is not None and entry.expire - now >= self.ttl / 2:
            self._count("hit")
            return entry.name
        if entry is not None and entry.expire - now > MARGIN_SECONDS:
            renewed = self._renew(key, entry, deadline)
            if renewed is not None:
                return renewed.name
        if entry is not None:
            self._store(lambda: self.store.drop(key, entry.name), None)
        return self._create(key, model, system, contents, tag, deadline)

    def _options(self, deadline: float) -> types.HttpOptions:
        left = max(1.0, min(float(self.settings.request_timeout), deadline - time.monotonic()))
        return types.HttpOptions(timeout=int(left * 1000))

    def _renew(self, key: str, entry: CacheEntry, deadline: float) -> CacheEntry | None:
        try:
            got = self.client.caches.update(name=entry.name, config=types.UpdateCachedContentConfig(
                ttl=f"{int(self.ttl)}s", http_options=self._options(deadline)))
        except Exception as exc:  # gone or refused: a new one is made below (or the examples go inline)
            log.info("context cache %s not renewed (%s: %s)", entry.name, type(exc).__name__, str(exc)[:200])
            return None
        renewed = CacheEntry(entry.name, _epoch(got.expire_time, self._clock() + self.ttl), entry.tokens)
        self._store(lambda: self.store.put(key, renewed), None)
        self._count("renewed")
        return renewed

    def _create(self, key: str, model: str, system: str | None, contents: Sequence[types.Content], tag: str,
                deadline: float) -> str | None:
        try:
            made = self.client.caches.create(model=model, config=types.CreateCachedContentConfig(
                contents=list(contents), system_instruction=system or None, ttl=f"{int(self.ttl)}s",
                display_name=f"gemini-ls few-shot {tag}", http_options=self._options(deadline)))
        except Exception as exc:  # any refusal (too small, quota, 5xx): the examples go inline, the task goes on
            log.warning("few-shot context cache not created for %s (%s: %s): examples go inline for %.0f s",
                        model, type(exc).__name__, str(exc)[:300], RETRY_SECONDS)
            self._count("failed")
            with self._lock:
                self._failed[key] = self._clock() + RETRY_SECONDS
            return None
        usage = getattr(made, "usage_metadata", None)
        entry = CacheEntry(str(made.name), _epoch(made.expire_time, self._clock() + self.ttl),
                           int(getattr(usage, "total_token_count", 0) or 0))
        winner = self._store(lambda: self.store.add(key, entry, tag), entry)
        if winner.name != entry.name:  # another replica made the same cache first: use that one
            self._delete(entry.name)
            self._count("hit")
            return str(winner.name)
        self._count("created")
        log.info("few-shot examples of %s cached as %s on %s (%d tokens, TTL %.0f s)", tag, entry.name, model,
                 entry.tokens, self.ttl)
        return entry.name

    def _delete(self, name: str) -> bool:
        try:
            self.client.caches.delete(name=name)
            return True
        except Exception as exc:  # already gone (expired): nothing left to pay for
            log.debug("context cache %s not deleted: %s", name, exc)
            return False

    def evict(self, model: str, system: str | None, contents: Sequence[types.Content], tag: str | None, name: str) -> None:
        """Gemini rejected a request naming `name` (expired or deleted): forget it, so the next request
        makes a new one."""
        if tag:
            key = cache_key(self.settings.key_fingerprint, model, tag, contents_digest(system, contents))
            self._store(lambda: self.store.drop(key, name), None)
        self._count("evicted")

    def release(self, tag: str | None) -> int:
        """The job of an example set ended: delete its caches (each stops costing storage now, not at
        its TTL). Returns how many were deleted."""
        if not tag:
            return 0
        entries = self._store(lambda: self.store.take_tag(tag), [])
        deleted = sum(1 for e in entries if self._delete(e.name))
        if deleted:
            self.metrics.context_cache.labels(result="deleted").inc(deleted)
            log.info("few-shot context caches of %s deleted at job end: %d", tag, deleted)
        return deleted


def is_cache_rejection(exc: BaseException) -> bool:
    """Gemini refused a request because of its cached_content (gone, expired, another model)."""
    text = f"{getattr(exc, 'message', '')} {exc}".lower()
    return "cachedcontent" in text.replace("_", "").replace(" ", "") or "cached content" in text


__all__ = ["CacheEntry", "CacheStore", "ContextCaches", "MemoryCacheStore", "RedisCacheStore", "cache_key",
           "contents_digest", "is_cache_rejection", "make_cache_store", "min_cache_tokens"]
