"""The file-URI cache (memory and real Redis) and the inline/file decision."""

from __future__ import annotations

import json
import logging
import time

import pytest
import redis
from google.genai import errors as genai_errors

from gemini_ls.gemini.cache import BYPASS_TOKEN, FileRef, MemoryFileCache, RedisFileCache, make_file_cache
from gemini_ls.gemini.errors import FileRejected, GeminiError
from gemini_ls.gemini.files import decide, inline_size, is_file_rejection, prompt_size
from gemini_ls.gemini.prompts import Prompt
from gemini_ls.metrics import Metrics
from gemini_ls.settings import Settings

MB = 1024 * 1024
LIMIT = 20 * MB
EXPIRES = time.time() + 48 * 3600  # one fixed value, so ref(n) == ref(n)


def ref(n: int = 1, expiration: float | None = None) -> FileRef:
    return FileRef(
        name=f"files/f{n}",
        uri=f"https://generativelanguage.googleapis.com/v1beta/files/f{n}",
        mime_type="image/png",
        expiration=expiration if expiration is not None else EXPIRES,
        size_bytes=1000 + n,
    )


def errors_total(metrics: Metrics, op: str) -> float:
    return metrics.registry.get_sample_value("gemini_ls_cache_errors_total", {"op": op}) or 0.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------------------- decide


@pytest.mark.parametrize(
    "policy, image_bytes, request_bytes, uses, cached, expected",
    [
        ("never", 30 * MB, 0, 5, True, "inline"),  # never means never, even when cached or reused
        ("always", 10, 0, 1, False, "file"),
        ("auto", 1 * MB, 1000, 1, False, "inline"),  # single use, small: inline is cheapest
        ("auto", 1 * MB, 1000, 2, False, "file"),  # reused by another request: upload once
        ("auto", 1 * MB, 1000, 1, True, "file"),  # already uploaded: a reference costs nothing
        ("auto", 15 * MB, 1000, 1, False, "file"),  # 15 MB -> 20 MB of base64: past the limit
        ("auto", 14 * MB, 0, 1, False, "inline"),  # 14 MB -> 18.7 MB of base64: fits
        ("auto", 14 * MB, 2 * MB, 1, False, "file"),  # ...but not with 2 MB of other request content
    ],
)
def test_decide(policy, image_bytes, request_bytes, uses, cached, expected):
    assert decide(policy, image_bytes, request_bytes, uses, cached, limit=LIMIT) == expected


def test_decide_limit_is_inclusive_and_counts_base64():
    # 300 bytes -> 400 base64 chars; 100 bytes of prompt: exactly 500.
    assert inline_size(300) == 400
    assert inline_size(1) == 4
    assert decide("auto", 300, 100, 1, False, limit=500) == "inline"
    assert decide("auto", 300, 101, 1, False, limit=500) == "file"


def test_decide_rejects_unknown_policy():
    with pytest.raises(ValueError):
        decide("sometimes", 1, 1, 1, False, limit=LIMIT)


def test_prompt_size_counts_system_user_and_schema():
    p = Prompt(system="sys" * 10, user="u" * 50, json_mode=True, response_schema={"type": "ARRAY"})
    assert prompt_size(p) >= 30 + 50 + len("{'type': 'ARRAY'}")
    assert prompt_size("héllo") == 6


def test_is_file_rejection():
    assert is_file_rejection(FileRejected("x", status=403))
    assert not is_file_rejection(GeminiError("x", status=403))
    denied = genai_errors.ClientError(
        403,
        {"error": {"code": 403, "status": "PERMISSION_DENIED",
                   "message": "You do not have permission to access the File abc or it may not exist."}},
    )
    assert is_file_rejection(denied)
    quota = genai_errors.ClientError(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota"}})
    assert not is_file_rejection(quota)
    assert not is_file_rejection(ValueError("403 file"))


# --------------------------------------------------------------------------------------- FileRef


def test_fileref_json_round_trip_is_stable():
    r = ref(7)
    assert FileRef.from_json(r.to_json()) == r
    assert r.to_json() == FileRef.from_json(r.to_json().encode()).to_json()  # deterministic: compare-and-delete relies on it
    assert set(json.loads(r.to_json())) == {"name", "uri", "mime_type", "expiration", "size_bytes"}


def test_fileref_ttl_keeps_a_safety_margin():
    now = 1_000_000.0
    r = ref(1, expiration=now + 48 * 3600)
    assert r.ttl_seconds(now) == pytest.approx(47 * 3600)
    assert ref(1, expiration=now + 1800).ttl_seconds(now) < 0  # less than the margin left: unusable


def test_make_file_cache_picks_memory_without_url(redis_url, redis_prefix):
    assert isinstance(make_file_cache(None, "p:", Metrics()), MemoryFileCache)
    cache = make_file_cache(redis_url, redis_prefix, Metrics())
    assert isinstance(cache, RedisFileCache)
    cache.close()


def test_settings_fingerprint_never_contains_the_key():
    s = Settings(api_key="AIzaSySecretSecret", base_url="http://x")
    assert "AIzaSy" not in s.key_fingerprint
    assert s.key_fingerprint != Settings(api_key="other", base_url="http://x").key_fingerprint
    assert s.key_fingerprint != Settings(api_key="AIzaSySecretSecret", base_url="http://y").key_fingerprint


# --------------------------------------------------------------------------------------- memory


def test_memory_cache_get_put_ttl_delete():
    clock = FakeClock()
    cache = MemoryFileCache(clock=clock)
    assert cache.available
    assert cache.get("k") is None
    cache.put("k", ref(1), ttl_seconds=10)
    assert cache.get("k") == ref(1)
    clock.now += 11
    assert cache.get("k") is None  # expired
    cache.put("k", ref(1), ttl_seconds=0)
    assert cache.get("k") is None  # a ref with no time left is not stored


def test_memory_cache_delete_expected_only_removes_that_ref():
    cache = MemoryFileCache()
    old, new = ref(1), ref(2)
    cache.put("k", new, 100)
    assert cache.delete("k", expected=old) is False
    assert cache.get("k") == new
    assert cache.delete("k", expected=new) is True
    assert cache.get("k") is None
    cache.put("k", old, 100)
    assert cache.delete("k") is True


def test_memory_cache_lock_is_exclusive_owned_and_expires():
    clock = FakeClock()
    cache = MemoryFileCache(clock=clock)
    t1 = cache.lock("k", 5)
    assert t1
    assert cache.lock("k", 5) is None
    cache.unlock("k", "not-the-token")  # a stranger cannot release it
    assert cache.lock("k", 5) is None
    cache.unlock("k", t1)
    t2 = cache.lock("k", 5)
    assert t2 and t2 != t1
    clock.now += 6  # holder died: lock expires
    t3 = cache.lock("k", 5)
    assert t3
    cache.unlock("k", t2)  # the dead holder's late unlock must not free the new owner's lock
    assert cache.lock("k", 5) is None


# --------------------------------------------------------------------------------------- redis


def test_redis_cache_layout_ttl_and_json(redis_url, redis_prefix):
    metrics = Metrics()
    cache = RedisFileCache(redis_url, redis_prefix, metrics)
    raw = redis.Redis.from_url(redis_url)
    try:
        key = "fp1234:abcdef"
        assert cache.get(key) is None
        cache.put(key, ref(3), ttl_seconds=3600)
        assert cache.get(key) == ref(3)
        stored = raw.get(f"{redis_prefix}file:{key}")
        assert json.loads(stored)["uri"].endswith("/files/f3")
        assert 3590_000 < raw.pttl(f"{redis_prefix}file:{key}") <= 3600_000
        assert cache.delete(key, expected=ref(4)) is False  # someone else's newer ref: kept
        assert raw.exists(f"{redis_prefix}file:{key}")
        assert cache.delete(key, expected=FileRef.from_json(stored)) is True
        assert cache.get(key) is None
        assert errors_total(metrics, "get") == 0
    finally:
        cache.close()
        raw.close()


def test_redis_cache_garbage_value_is_a_miss_and_removed(redis_url, redis_prefix):
    cache = RedisFileCache(redis_url, redis_prefix, Metrics())
    raw = redis.Redis.from_url(redis_url)
    try:
        raw.set(f"{redis_prefix}file:k", b"{not json")
        assert cache.get("k") is None
        assert not raw.exists(f"{redis_prefix}file:k")
    finally:
        cache.close()
        raw.close()


def test_redis_lock_nx_px_and_owner_only_release(redis_url, redis_prefix):
    a = RedisFileCache(redis_url, redis_prefix, Metrics())
    b = RedisFileCache(redis_url, redis_prefix, Metrics())  # another "replica"
    raw = redis.Redis.from_url(redis_url)
    try:
        token = a.lock("k", 30)
        assert token and token != BYPASS_TOKEN
        assert raw.get(f"{redis_prefix}lock:k").decode() == token
        assert 29_000 < raw.pttl(f"{redis_prefix}lock:k") <= 30_000
        assert b.lock("k", 30) is None
        b.unlock("k", "forged")
        assert raw.exists(f"{redis_prefix}lock:k")
        a.unlock("k", token)
        assert not raw.exists(f"{redis_prefix}lock:k")
        short = b.lock("k", 0.2)
        assert short
        time.sleep(0.35)  # holder "died": Redis expires the lock
        assert a.lock("k", 30)
        b.unlock("k", short)  # stale owner: no effect on a's lock
        assert raw.exists(f"{redis_prefix}lock:k")
    finally:
        a.close()
        b.close()
        raw.close()


def test_redis_down_is_a_miss_counted_and_warned_once_then_recovers(restartable_redis, caplog):
    metrics = Metrics()
    cache = RedisFileCache(restartable_redis.url, "t:", metrics, socket_timeout=0.3, retry_interval=0.3, warn_interval=60)
    try:
        cache.put("k", ref(1), 3600)
        assert cache.get("k") is not None
        restartable_redis.stop()
        caplog.set_level(logging.WARNING, logger="gemini_ls.gemini.cache")
        started = time.monotonic()
        for _ in range(50):
            assert cache.get("k") is None
            cache.put("k", ref(2), 3600)
            assert cache.lock("k", 5) == BYPASS_TOKEN  # nobody can coordinate: proceed alone
            cache.unlock("k", BYPASS_TOKEN)
            assert cache.delete("k") is False
        # The breaker stops a dead Redis from costing a timeout per call.
        assert time.monotonic() - started < 3.0
        assert not cache.available
        assert cache.healthy() is False  # /health's live check
        assert errors_total(metrics, "get") == 50
        assert errors_total(metrics, "put") == 50
        assert errors_total(metrics, "lock") == 50
        warnings = [r for r in caplog.records if r.name == "gemini_ls.gemini.cache" and r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "bypassing the cache" in warnings[0].getMessage()
        assert restartable_redis.url not in warnings[0].getMessage()

        restartable_redis.start()
        time.sleep(0.4)  # past retry_interval: the next call tries Redis again
        assert cache.get("k") is None  # restarted empty (no persistence) but reachable
        assert cache.available
        assert cache.healthy() is True
        cache.put("k", ref(3), 3600)
        assert cache.get("k").name == "files/f3"
        token = cache.lock("k", 5)
        assert token not in (None, BYPASS_TOKEN)
        cache.unlock("k", token)  # the Lua script is re-registered after the restart (NOSCRIPT)
        assert cache.lock("k", 5) not in (None, BYPASS_TOKEN)
    finally:
        cache.close()


def test_redis_oom_bypasses_writes_but_reads_still_work(restartable_redis, caplog):
    metrics = Metrics()
    cache = RedisFileCache(restartable_redis.url, "t:", metrics)
    raw = redis.Redis.from_url(restartable_redis.url)
    try:
        cache.put("k", ref(1), 3600)
        raw.config_set("maxmemory-policy", "noeviction")
        raw.config_set("maxmemory", 1)  # everything is over the limit now: writes answer OOM
        caplog.set_level(logging.WARNING, logger="gemini_ls.gemini.cache")
        cache.put("k2", ref(2), 3600)
        assert errors_total(metrics, "put") == 1
        assert "OutOfMemoryError" in caplog.text  # redis-py maps "OOM command not allowed" to it
        assert cache.lock("k2", 5) == BYPASS_TOKEN  # SET NX refused too: proceed alone
        assert errors_total(metrics, "lock") == 1
        assert cache.available  # OOM does not open the breaker: reads keep working
        assert cache.get("k").name == "files/f1"
        assert cache.get("k2") is None
        raw.config_set("maxmemory", 0)
        cache.put("k2", ref(2), 3600)
        assert cache.get("k2").name == "files/f2"
    finally:
        cache.close()
        raw.close()
