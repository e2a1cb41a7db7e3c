"""The shared Gemini gate: RPM moving window, TPM charge, and a 429 cool-down seen by every process
(two gates on one real Redis stand for two processes)."""

from __future__ import annotations

import time

import pytest

from gemini_ls.gemini.errors import GeminiError
from gemini_ls.gemini.quota import SharedGate, make_gate
from gemini_ls.metrics import Metrics
from gemini_ls.settings import Settings


def test_off_by_default_without_redis():
    assert type(make_gate(Settings(), Metrics())).__name__ == "RateGate"


def test_rpm_in_memory_blocks_past_the_limit_and_gives_up_at_the_deadline():
    m = Metrics()
    gate = SharedGate(Settings(gemini_rpm=3, gemini_rate_window=5), m)
    far = time.monotonic() + 60
    for _ in range(3):
        gate.wait(far)
    with pytest.raises(GeminiError) as exc:
        gate.wait(time.monotonic() + 0.2)  # the next slot is ~6 s away
    assert exc.value.reason == "rate_limited" and "rpm" in str(exc.value)


def test_tpm_charge_blocks_the_next_call():
    gate = SharedGate(Settings(gemini_tpm=1000, gemini_rate_window=5), Metrics())
    gate.wait(time.monotonic() + 5)
    gate.charge(5000)  # one big prompt uses the whole window
    with pytest.raises(GeminiError):
        gate.wait(time.monotonic() + 0.2)


def test_a_429_cool_down_reaches_another_process(redis_url, redis_prefix):
    settings = Settings(redis_url=redis_url, redis_prefix=redis_prefix)
    a, b = SharedGate(settings, Metrics()), SharedGate(settings, Metrics())
    a.cool_down(1.0)
    started = time.monotonic()
    b.wait(time.monotonic() + 10)  # b never saw the 429
    assert 0.8 <= time.monotonic() - started < 3
    a.cool_down(30)
    with pytest.raises(GeminiError):
        b.wait(time.monotonic() + 1)


def test_rpm_shared_through_redis(redis_url, redis_prefix):
    settings = Settings(redis_url=redis_url, redis_prefix=redis_prefix, gemini_rpm=4, gemini_rate_window=5)
    a, b = SharedGate(settings, Metrics()), SharedGate(settings, Metrics())
    far = time.monotonic() + 60
    for gate in (a, b, a, b):
        gate.wait(far)
    c = SharedGate(settings, Metrics())
    with pytest.raises(GeminiError):
        c.wait(time.monotonic() + 0.3)


def test_a_wait_for_the_window_is_counted():
    metrics = Metrics()
    gate = SharedGate(Settings(gemini_rpm=1, gemini_rate_window=1), metrics)
    gate.wait(time.monotonic() + 10)
    started = time.monotonic()
    gate.wait(time.monotonic() + 10)  # the window (1 s + the 1 s guard) must pass first
    assert 1.0 <= time.monotonic() - started < 4
    assert metrics.registry.get_sample_value("gemini_ls_limiter_waits_total", {"limit": "rpm"}) >= 1


def test_quotas_and_shared_cool_downs_are_per_model(redis_url, redis_prefix):
    """Gemini's limits are per model: masks routed to GEMINI_MASK_MODEL do not use GEMINI_MODEL's window."""
    settings = Settings(redis_url=redis_url, redis_prefix=redis_prefix, gemini_rpm=2, gemini_rate_window=5)
    a, b = SharedGate(settings, Metrics()), SharedGate(settings, Metrics())
    far = time.monotonic() + 60
    a.wait(far, "gemini-3.6-flash")
    b.wait(far, "gemini-3.6-flash")
    a.wait(far, "gemini-2.5-flash-lite")  # another model's window: free
    with pytest.raises(GeminiError):
        b.wait(time.monotonic() + 0.3, "gemini-3.6-flash")
    a.cool_down(30, "gemini-2.5-flash-lite")  # a 429 on the mask model...
    with pytest.raises(GeminiError):
        b.wait(time.monotonic() + 0.3, "gemini-2.5-flash-lite")  # ... cools that model down everywhere
    c = SharedGate(Settings(redis_url=redis_url, redis_prefix=redis_prefix), Metrics())
    started = time.monotonic()
    c.wait(time.monotonic() + 5, "gemini-3.6-flash")  # ... and not the other model
    assert time.monotonic() - started < 0.5
