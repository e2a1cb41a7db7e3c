"""One 429 must not stop every prediction until a restart (issue 11, case 6).

Gemini answers a daily-quota 429 with a `retryDelay` of hours. Before the fix the shared cool-down
took it as it came: one answer with retryDelay 100000 s, and every later task failed with "cooling
down for 99999 s more". Now the cool-down is capped (GEMINI_MAX_COOLDOWN), then one probe request
goes through (a half-open circuit) and the others follow when it succeeds; /health says whether
Gemini is cooling down and until when.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from tests.faults.common import assert_alive, assert_failed, assert_good, good_task, png, predict, url_task

DAY_QUOTA = {"retry_delay": 100_000}


def _status(emu, code: int) -> int:
    return emu.counters()["statuses"].get(str(code), 0)


def test_a_429_asking_for_a_day_costs_at_most_the_cap(backend_factory, emu):
    backend = backend_factory(GEMINI_MAX_COOLDOWN="2", GEMINI_MAX_RETRIES="0", PREDICT_TIMEOUT="20")
    emu.add_fault("429", count=1, args=DAY_QUOTA)
    (first,) = predict(backend, [good_task(1)])
    assert_failed(first, "rate")  # no retries allowed: this one task fails ...
    cooling = backend.get("/health").json()["gemini"]["cooling_down"]
    assert cooling is not None and cooling["state"] == "open", cooling
    assert 0 < cooling["seconds_left"] <= 2.0, cooling
    until = datetime.fromisoformat(cooling["until"].replace("Z", "+00:00"))
    assert 0 < (until - datetime.now(timezone.utc)).total_seconds() <= 3.0, cooling
    started = time.monotonic()
    results = predict(backend, [good_task(2), good_task(3)])  # ... the next clean batch does not
    assert_good(results[0], 2)
    assert_good(results[1], 3)
    assert time.monotonic() - started < 5.0
    assert backend.get("/health").json()["gemini"]["cooling_down"] is None
    assert_alive(backend)


def test_after_the_cool_down_one_probe_goes_first(backend_factory, emu, image_server):
    """Gemini keeps answering 429 for 1.5 s after the first one; the cap is 1 s. The probe at 1 s
    meets a 429 again and only the probe does: 2 answers 429 in all (without the half-open step
    every waiting task would call at 1 s: 5). At 2 s the probe succeeds and the others follow."""
    n = 4
    backend = backend_factory(
        GEMINI_MAX_COOLDOWN="1", GEMINI_CONCURRENCY=str(n), GEMINI_MAX_RETRIES="5", PREDICT_TIMEOUT="20"
    )
    tasks = [good_task(0, seed=200)]
    for i in range(1, n):  # the later tasks reach Gemini while the gate is already closed
        tasks.append(url_task(i, image_server.add(f"/p{i}.png", png(200 + i), delay=0.1 * i)))
    emu.add_fault("429", rate=1.0, args=DAY_QUOTA)
    stop = threading.Event()

    def quota_back_after_first_429() -> None:
        while not stop.is_set() and _status(emu, 429) == 0:
            time.sleep(0.01)
        if not stop.wait(1.5):
            emu.clear_faults()

    watcher = threading.Thread(target=quota_back_after_first_429, daemon=True)
    watcher.start()
    try:
        results = predict(backend, tasks)
    finally:
        stop.set()
        watcher.join(5)
    for i, entry in enumerate(results):
        assert_good(entry, 200 + i)
    assert _status(emu, 429) == 2, emu.counters()["statuses"]
    assert backend.get("/health").json()["gemini"]["cooling_down"] is None
