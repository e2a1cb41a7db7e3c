"""Redis frozen (SIGSTOP: the kernel still accepts connections, nobody answers) under a real
`gemini-ls serve`: the request path loses at most a fraction of a second to it, then the process's
breaker (redisconn.py) answers for Redis until a probe finds it back.

The regression this guards: /predict of 4 tasks did not answer within 130 s (each task waited on the
outcome store's 30 s socket timeout, retried by redis-py, then on the file cache). Every Redis use of
/predict is switched on here: the outcome store, the Files API cache (GEMINI_FILES=always), the shared
quota (GEMINI_RPM: the `limits` storage) and cool-down, the review ledger (REVIEW_LEARN).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from tests.e2e.helpers import BackendProcess, start_backend_process
from tests.faults.common import CONFIG, assert_good, good_task, sample_from_text
from tests.fixtures.redis import LocalRedis

BOUND = 5.0  # the bound for /predict of 4 tasks with Redis frozen


@contextmanager
def frozen(server: LocalRedis) -> Iterator[None]:
    assert server._proc is not None
    os.kill(server._proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server._proc.pid, signal.SIGCONT)


def _predict(bp: BackendProcess, ids: list[int]) -> tuple[float, list[dict]]:
    body = {"tasks": [good_task(i) for i in ids], "project": "7.1", "label_config": CONFIG, "params": {"context": None}}
    started = time.monotonic()
    resp = requests.post(bp.url + "/predict", json=body, timeout=180)
    took = time.monotonic() - started
    assert resp.status_code == 200, resp.text[:500]
    return took, resp.json()["results"]


def _webhook(bp: BackendProcess, annotation: int) -> tuple[float, dict]:
    started = time.monotonic()
    resp = requests.post(bp.url + "/webhook", json={"action": "ANNOTATION_DELETED", "annotation": {"id": annotation}}, timeout=180)
    took = time.monotonic() - started
    assert resp.status_code == 200, resp.text[:500]
    return took, resp.json()


@pytest.fixture
def serve(emulator, restartable_redis) -> Iterator[BackendProcess]:
    env = {"GEMINI_BASE_URL": emulator.url, "GEMINI_API_KEY": "emulator-key", "REDIS_URL": restartable_redis.url,
           "REDIS_PREFIX": "frozen:", "WORKERS": "1", "GEMINI_FILES": "always", "GEMINI_RPM": "6000",
           "REVIEW_LEARN": "thresholds", "PREDICT_TIMEOUT": "30", "GEMINI_CONCURRENCY": "4"}
    bp = start_backend_process("redis-frozen", env)
    try:
        yield bp
    finally:
        bp.stop()


def test_frozen_redis_costs_predict_and_webhook_a_fraction_of_a_second(serve, emulator, restartable_redis):
    emulator.reset(files=True)
    warm, results = _predict(serve, [1, 2, 3, 4])
    for i, entry in enumerate(results, 1):
        assert_good(entry, i)
    calm_webhook, _ = _webhook(serve, 900)

    with frozen(restartable_redis):
        took, results = _predict(serve, [11, 12, 13, 14])  # new images: nothing of them is cached anywhere
        for i, entry in zip((11, 12, 13, 14), results):
            assert_good(entry, i)
        health = requests.get(serve.url + "/health", timeout=5).json()["redis"]
        first_hook, first_answer = _webhook(serve, 901)  # breaker open: not even one timeout
        metrics = requests.get(serve.url + "/metrics", timeout=5)
        # the breaker's time is up: one call probes (and times out), the rest still fail fast
        time.sleep(2.2)
        probe_hook, probe_answer = _webhook(serve, 902)
        again, results = _predict(serve, [21, 22, 23, 24])
        for i, entry in zip((21, 22, 23, 24), results):
            assert_good(entry, i)

    print(f"\nRedis frozen under gemini-ls serve: /predict of 4 tasks {took:.2f} s (Redis up: {warm:.2f} s), "
          f"again {again:.2f} s; /webhook {first_hook:.3f} s (up: {calm_webhook:.3f} s), as the probe {probe_hook:.3f} s; "
          f"/metrics {metrics.elapsed.total_seconds():.3f} s")
    assert took < BOUND, f"/predict of 4 tasks took {took:.1f} s with Redis frozen"
    assert again < BOUND
    assert health["breaker"]["state"] == "open" and health["breaker"]["trips"] >= 1, health
    assert first_answer["error"] == "review ledger unavailable" and first_hook < 0.5
    assert probe_answer["error"] == "review ledger unavailable" and probe_hook < 1.5
    assert metrics.status_code == 200 and metrics.elapsed.total_seconds() < 2.0
    assert sample_from_text(metrics.text, "gemini_ls_redis_breaker_open") == 1
    assert sample_from_text(metrics.text, "gemini_ls_redis_breaker_trips_total") >= 1
    assert sample_from_text(metrics.text, "gemini_ls_redis_breaker_refused_total") >= 1
    assert "Redis did not answer" in serve.log_text()

    # Redis back: after the breaker's time one probe closes it, and Redis is used again
    time.sleep(2.2)
    _webhook(serve, 903)
    back, results = _predict(serve, [31, 32])
    assert_good(results[0], 31)
    health = requests.get(serve.url + "/health", timeout=5).json()["redis"]
    assert health["breaker"]["state"] == "closed", health
    assert "Redis answers again" in serve.log_text()
    assert back < BOUND
