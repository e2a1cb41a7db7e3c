"""Redis faults: the Files-API URI cache is an optimisation, never a dependency.

GEMINI_FILES=always makes every image go through the cache (look-up, lock, upload, put), so each
test exercises Redis on every task. Real redis-server processes; killing one is SIGKILL.
"""

from __future__ import annotations

import threading
import time

import redis

from tests.faults.common import assert_alive, assert_good, good_task, predict
from tests.fixtures.redis import LocalRedis

FILES = {"GEMINI_FILES": "always", "GEMINI_CONCURRENCY": "2", "PREDICT_TIMEOUT": "20"}


def _cache_errors(backend) -> float:
    return sum(
        backend.metric("gemini_ls_cache_errors_total", op=op) for op in ("get", "put", "delete", "lock", "unlock")
    )


def _keys(url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return list(client.scan_iter(match=prefix + "*"))
    finally:
        client.close()


def _reachable(backend, expected: bool, timeout: float = 5.0) -> bool | None:
    """/health's Redis reachability: the last background probe's answer (None before the first),
    so poll until it reports `expected` or the time is up."""
    end = time.monotonic() + timeout
    while True:
        value = backend.get("/health").json()["redis"]["reachable"]
        if value is expected or time.monotonic() > end:
            return value
        time.sleep(0.2)


def _cache_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("gemini_ls") and "Redis" in r.getMessage()]


def test_redis_down_at_start(backend_factory, emu, restartable_redis, gemini_logs):
    restartable_redis.stop()
    backend = backend_factory(REDIS_URL=restartable_redis.url, REDIS_PREFIX="t:", **FILES)
    health = backend.get("/health").json()
    assert health["status"] == "UP"
    results = predict(backend, [good_task(1), good_task(2), good_task(3)])
    for entry, seed in zip(results, (1, 2, 3)):
        assert_good(entry, seed)
    assert _cache_errors(backend) >= 1
    assert any("bypassing the cache" in m for m in _cache_warnings(gemini_logs)), gemini_logs.text
    assert _reachable(backend, False) is False
    assert 'gemini_ls_cache_errors_total{op="' in backend.get("/metrics").text


def test_redis_dies_mid_batch_and_comes_back(backend_factory, emu, restartable_redis, gemini_logs):
    prefix = "mid:"
    backend = backend_factory(REDIS_URL=restartable_redis.url, REDIS_PREFIX=prefix, **FILES)
    (warm,) = predict(backend, [good_task(1)])
    assert_good(warm, 1)
    assert _keys(restartable_redis.url, prefix), "the healthy cache holds the uploaded URI"

    emu.set_latency(0.4)
    killer = threading.Timer(0.6, restartable_redis.stop)
    killer.start()
    try:
        results = predict(backend, [good_task(i) for i in range(10, 18)])
    finally:
        killer.join()
    for i, entry in enumerate(results):
        assert_good(entry, 10 + i)
    assert _cache_errors(backend) >= 1
    assert not restartable_redis.running

    # back again (empty: it was killed): after the breaker's retry interval the cache is used again
    restartable_redis.start()
    emu.set_latency(0.0)
    time.sleep(2.2)
    results = predict(backend, [good_task(i) for i in range(20, 23)])
    for i, entry in enumerate(results):
        assert_good(entry, 20 + i)
    assert len(_keys(restartable_redis.url, prefix + "file:")) == 3, "the recovered cache holds the new URIs"
    assert any("answers again" in m for m in _cache_warnings(gemini_logs)), gemini_logs.text
    assert _reachable(backend, True) is True
    assert_alive(backend)


def test_redis_out_of_memory_bypasses_the_cache(backend_factory, emu, gemini_logs):
    server = LocalRedis(extra_args=("--maxmemory", "3mb", "--maxmemory-policy", "noeviction")).start()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        filler = b"x" * 16_384
        try:
            for i in range(10_000):
                client.set(f"junk:{i}", filler)
            raise AssertionError("redis never ran out of memory")
        except redis.exceptions.OutOfMemoryError:
            pass
        finally:
            client.close()

        backend = backend_factory(REDIS_URL=server.url, REDIS_PREFIX="oom:", **FILES)
        results = predict(backend, [good_task(1), good_task(2), good_task(3)])
        for entry, seed in zip(results, (1, 2, 3)):
            assert_good(entry, seed)
        assert backend.metric("gemini_ls_cache_errors_total", op="put") + backend.metric(
            "gemini_ls_cache_errors_total", op="lock"
        ) >= 1
        assert any("OutOfMemory" in m or "OOM" in m for m in _cache_warnings(gemini_logs)), gemini_logs.text
        # at the edge of maxmemory a write may squeeze in after a lock is freed; most cannot
        assert len(_keys(server.url, "oom:file:")) < 3
        # ... and nothing is lost: the same images again still work (uploaded anew or inline)
        again = predict(backend, [good_task(4, seed=1), good_task(5, seed=2)])
        assert_good(again[0], 1)
        assert_good(again[1], 2)
        assert_alive(backend)
    finally:
        server.close()
