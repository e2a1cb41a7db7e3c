"""redisconn.py: the one place Redis clients are built, and the process breaker's states."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import redis

import gemini_ls
from gemini_ls import redisconn
from gemini_ls.redisconn import Breaker, BreakerOpen

PACKAGE = Path(gemini_ls.__file__).parent
BUILDS_A_CLIENT = re.compile(r"redis\.Redis\s*\(|Redis\.from_url|redis\.from_url|redis\.ConnectionPool|RedisStorage\s*\(|StrictRedis")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_only_redisconn_builds_redis_clients():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py")) if path.name != "redisconn.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if BUILDS_A_CLIENT.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_breaker_opens_on_a_timeout_probes_once_and_closes():
    clock = Clock()
    b = Breaker(2.0, clock)
    assert b.state() == "closed" and b.allow()
    b.failed(redis.TimeoutError("Timeout reading from socket"))
    assert b.state() == "open"
    assert not b.allow() and not b.allow()  # fail fast, counted
    clock.now += 2.0
    assert b.state() == "half_open"
    assert b.allow()  # the probe
    assert not b.allow()  # the others wait for its verdict elsewhere (fail fast)
    b.failed(redis.ConnectionError("still frozen"))
    assert b.state() == "open"  # reopened, not counted as a second trip
    clock.now += 2.0
    assert b.allow()
    b.succeeded()
    s = b.status()
    assert s["state"] == "closed" and s["trips"] == 1 and s["refused"] == 3 and s["last_error"] == "ConnectionError"


def test_a_probe_that_ends_without_a_verdict_lets_the_next_call_probe():
    clock = Clock()
    b = Breaker(1.0, clock)
    b.failed(redis.TimeoutError("t"))
    clock.now += 1.0
    assert b.allow()
    b.settled()  # e.g. Redis answered with an error: no verdict on reachability
    assert b.state() == "half_open" and b.allow()


def test_a_request_client_fails_fast_while_open_and_a_job_client_does_not(restartable_redis):
    url = restartable_redis.url
    request, job = redisconn.client(url, redisconn.REQUEST), redisconn.client(url, redisconn.JOB_TEXT)
    assert redisconn.client(url, redisconn.REQUEST) is request  # one per URL and profile per process
    request.set("k", "v")
    assert job.get("k") == "v" and request.get("k") == b"v"  # the profiles' reply types
    breaker = redisconn.breaker(url)
    breaker.failed(redis.TimeoutError("simulated"))
    with pytest.raises(BreakerOpen):
        request.get("k")
    with pytest.raises(BreakerOpen):
        request.pipeline().set("k", "w").execute()
    assert job.get("k") == "v"  # a job may wait: not held back, and its success closes the breaker
    assert breaker.state() == "closed" and request.get("k") == b"v"


def test_breaker_is_thread_safe_one_probe_among_many():
    clock = Clock()
    b = Breaker(1.0, clock)
    b.failed(redis.TimeoutError("t"))
    clock.now += 1.0
    allowed: list[bool] = []
    lock = threading.Lock()

    def ask() -> None:
        ok = b.allow()
        with lock:
            allowed.append(ok)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 1


def test_metrics_text_reports_the_breaker(restartable_redis):
    assert redisconn.metrics_text(None) == b""
    redisconn.breaker(restartable_redis.url).failed(redis.TimeoutError("t"))
    text = redisconn.metrics_text(restartable_redis.url).decode()
    assert "gemini_ls_redis_breaker_open 1.0\n" in text and "gemini_ls_redis_breaker_trips_total 1.0\n" in text
