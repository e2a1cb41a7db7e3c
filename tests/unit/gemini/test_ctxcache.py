"""The few-shot context cache's pure parts and its bookkeeping: minimum sizes, keys, the shared
store (memory and a real redis-server), renewal, races between replicas, release at job end, and
cached tokens billed at the cached rate."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from google.genai import types

from gemini_ls.gemini.ctxcache import (
    CacheEntry,
    ContextCaches,
    MemoryCacheStore,
    RedisCacheStore,
    cache_key,
    contents_digest,
    is_cache_rejection,
    min_cache_tokens,
)
from gemini_ls.gemini.pricing import CACHED_INPUT_RATIO, Tokens, cost_of, storage_usd
from gemini_ls.metrics import Metrics
from gemini_ls.redisconn import client as redis_client


def turns(text: str) -> list[types.Content]:
    return [types.Content(role="user", parts=[types.Part.from_text(text=text)]),
            types.Content(role="model", parts=[types.Part.from_text(text="[]")])]


def test_minimum_cacheable_tokens_per_model():
    assert min_cache_tokens("gemini-2.5-flash-lite") == 2048
    assert min_cache_tokens("models/gemini-2.5-pro") == 2048
    assert min_cache_tokens("gemini-3.6-flash") == 4096
    assert min_cache_tokens("gemini-3.1-pro-preview") == 4096
    assert min_cache_tokens("some-future-model") == 4096  # unknown: the largest figure


def test_the_key_names_key_model_tag_and_contents():
    d = contents_digest("sys", turns("a"))
    assert d == contents_digest("sys", turns("a"))
    assert len({d, contents_digest("sys", turns("b")), contents_digest("other", turns("a"))}) == 3
    k = cache_key("fp1", "models/gemini-2.5-flash-lite", "e12345678", d)
    assert k == f"fp1:gemini-2.5-flash-lite:e12345678:{d}"
    assert k != cache_key("fp2", "gemini-2.5-flash-lite", "e12345678", d) != cache_key("fp1", "gemini-3.6-flash", "e12345678", d)


def test_cached_tokens_are_billed_at_a_tenth_of_the_input_rate():
    assert CACHED_INPUT_RATIO == 0.10
    plain = cost_of("gemini-2.5-flash-lite", Tokens(prompt=1_000_000, output=0, requests=1))
    cached = cost_of("gemini-2.5-flash-lite", Tokens(prompt=1_000_000, cached=800_000, requests=1))
    assert plain.sync_usd == pytest.approx(0.10)
    assert cached.sync_usd == pytest.approx(0.10 * (0.2 + 0.8 * 0.10))
    assert cached.batch_usd == pytest.approx(cached.sync_usd / 2)
    assert "800000 of them cached" in cached.describe()
    assert (Tokens(prompt=5, cached=3) + Tokens(prompt=2, cached=1)).cached == 4
    assert storage_usd("gemini-2.5-pro", 1_000_000, 3600) == pytest.approx(4.50)
    assert storage_usd("gemini-3.6-flash", 500_000, 1800) == pytest.approx(0.25)


def test_a_cache_rejection_is_told_from_other_errors():
    assert is_cache_rejection(Exception("403 PERMISSION_DENIED. CachedContent not found (or permission denied)"))
    assert is_cache_rejection(Exception("Model used by GenerateContent request and cached_content has to be the same"))
    assert not is_cache_rejection(Exception("500 INTERNAL"))


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return MemoryCacheStore()
    url = request.getfixturevalue("redis_url")
    return RedisCacheStore(redis_client(url), request.getfixturevalue("redis_prefix"))


def test_the_store_keeps_the_first_writer_and_forgets_a_tag(store):
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    a, b = CacheEntry("cachedContents/a", now + 600, 3000), CacheEntry("cachedContents/b", now + 600, 3000)
    assert store.add("k1", a, "e1") == a
    assert store.add("k1", b, "e1") == a  # another replica came second: it gets the first one's
    assert store.get("k1") == a
    store.drop("k1", "cachedContents/b")  # not the name it holds: kept
    assert store.get("k1") == a
    store.add("k2", CacheEntry("cachedContents/c", now + 600, 3000), "e1")
    assert sorted(e.name for e in store.take_tag("e1")) == ["cachedContents/a", "cachedContents/c"]
    assert store.get("k1") is None and store.take_tag("e1") == []


@dataclass
class FakeCaches:
    """client.caches as far as ContextCaches uses it; records its calls."""

    clock: list[float]
    calls: list[tuple[str, str]] = field(default_factory=list)
    n: int = 0

    def _at(self, ttl: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock[0] + float(ttl.rstrip("s")), dt.timezone.utc)

    def create(self, *, model, config):
        self.n += 1
        self.calls.append(("create", model))
        return SimpleNamespace(name=f"cachedContents/c{self.n}", expire_time=self._at(config.ttl),
                               usage_metadata=SimpleNamespace(total_token_count=4321))

    def update(self, *, name, config):
        self.calls.append(("update", name))
        return SimpleNamespace(name=name, expire_time=self._at(config.ttl))

    def delete(self, *, name):
        self.calls.append(("delete", name))


def manager(store=None, ttl=600.0):
    clock = [1_000_000.0]
    fake = FakeCaches(clock)
    settings = SimpleNamespace(key_fingerprint="fp", few_shot_cache_ttl=ttl, request_timeout=30.0)
    caches = ContextCaches(SimpleNamespace(caches=fake), store or MemoryCacheStore(lambda: clock[0]), settings, Metrics(),
                           clock=lambda: clock[0])
    return caches, fake, clock


def test_made_once_renewed_past_half_its_ttl_and_deleted_at_job_end():
    caches, fake, clock = manager()
    args = ("gemini-2.5-flash-lite", "sys", turns("x"), 3000, "e1", float("inf"))
    name = caches.reference(*args)
    assert name == "cachedContents/c1" and caches.reference(*args) == name
    clock[0] += 200  # 400 s left of 600: used as is
    assert caches.reference(*args) == name and [c[0] for c in fake.calls] == ["create"]
    clock[0] += 150  # 250 s left: renewed, same cache
    assert caches.reference(*args) == name and [c[0] for c in fake.calls] == ["create", "update"]
    assert caches.release("e1") == 1 and fake.calls[-1] == ("delete", name)
    assert caches.reference(*args) == "cachedContents/c2"  # after the job: a new one when needed


def test_too_small_or_untagged_examples_are_not_cached():
    caches, fake, _ = manager()
    assert caches.reference("gemini-3.6-flash", "sys", turns("x"), 4095, "e1", float("inf")) is None
    assert caches.reference("gemini-2.5-flash-lite", "sys", turns("x"), 3000, None, float("inf")) is None
    assert fake.calls == []


def test_a_replica_that_loses_the_race_deletes_its_own_cache():
    now = 1_000_000.0
    store = MemoryCacheStore(lambda: now)
    caches, fake, _ = manager(store)
    key = cache_key("fp", "gemini-2.5-flash-lite", "e1", contents_digest("sys", turns("x")))

    # another replica stores its cache between our look-up and our create
    real_create = fake.create

    def create(**kw):
        store.add(key, CacheEntry("cachedContents/theirs", now + 600, 4321), "e1")
        return real_create(**kw)

    fake.create = create  # type: ignore[method-assign]
    assert caches.reference("gemini-2.5-flash-lite", "sys", turns("x"), 3000, "e1", float("inf")) == "cachedContents/theirs"
    assert fake.calls == [("create", "gemini-2.5-flash-lite"), ("delete", "cachedContents/c1")]
