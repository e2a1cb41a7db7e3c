"""Gemini faults, through our HTTP server, the real google-genai SDK and the emulator.

Server-wide emulator faults fire on the next N generateContent calls, whichever task makes them.
To know which task a fault hits, tests either run one task at a time (GEMINI_CONCURRENCY=1: the
first task of the batch makes the first call) or let the good task start later (its image comes
from a loopback image server that answers after a delay).
"""

from __future__ import annotations

import re
import threading
import time

from tests.faults.common import (
    assert_alive,
    assert_failed,
    assert_good,
    check_contract,
    failure_reasons,
    good_task,
    logged_for_task,
    png,
    predict,
    scene,
    url_task,
)
from tests.helpers import data_uri

FAST = {"GEMINI_MAX_RETRIES": "3", "PREDICT_TIMEOUT": "20", "GEMINI_TIMEOUT": "5"}


def _calls(emu) -> int:
    return emu.counters()["requests"].get("generateContent", 0)


def _status(emu, code: int) -> int:
    return emu.counters()["statuses"].get(str(code), 0)


def test_429_waits_the_retry_delay_gemini_names(backend_factory, emu, gemini_logs):
    """The SDK ignores RetryInfo; we wait exactly what Gemini asked (1.5 s), once, then succeed."""
    backend = backend_factory(GEMINI_CONCURRENCY="1", **FAST)
    emu.add_fault("429", count=1, args={"retry_delay": 1.5})
    started = time.monotonic()
    first, second = predict(backend, [good_task(1), good_task(2)])
    elapsed = time.monotonic() - started
    assert_good(first, 1)
    assert_good(second, 2)
    assert elapsed >= 1.5, f"the retryDelay of 1.5 s was not honoured ({elapsed:.2f} s)"
    assert elapsed < 6.0, elapsed
    assert _status(emu, 429) == 1
    assert _calls(emu) == 3  # one 429, its retry, the other task: the SDK did not retry on its own
    assert backend.metric("gemini_ls_gemini_retries_total", reason="rate_limited") == 1
    delays = [float(m) for m in re.findall(r"retry 1 in ([\d.]+) s", gemini_logs.text)]
    assert delays and abs(delays[0] - 1.5) < 0.05, gemini_logs.text
    assert_alive(backend)


def test_one_429_slows_the_whole_batch_instead_of_each_task_finding_it(backend_factory, emu, image_server):
    """N tasks start one after another; the first meets a 429 with retryDelay D while Gemini's
    quota window is closed. The shared RateGate holds every other task until D: the emulator sees
    one 429 (not N) and the batch takes >= D."""
    n, delay = 8, 2.0
    backend = backend_factory(GEMINI_CONCURRENCY=str(n), **FAST)
    tasks = [good_task(0, seed=100)]
    for i in range(1, n):  # each later task's image arrives 0.1 s after the previous one's
        tasks.append(url_task(i, image_server.add(f"/s{i}.png", png(100 + i), delay=0.1 * i)))
    emu.add_fault("429", rate=1.0, args={"retry_delay": delay})  # quota exhausted ...
    closer = threading.Timer(delay - 0.4, emu.clear_faults)  # ... until shortly before D
    closer.start()
    try:
        started = time.monotonic()
        results = predict(backend, tasks)
        elapsed = time.monotonic() - started
    finally:
        closer.cancel()
    for i, entry in enumerate(results):
        assert_good(entry, 100 + i)
    assert elapsed >= delay, elapsed
    seen = _status(emu, 429)
    assert 1 <= seen <= 2, f"{seen} tasks of {n} ran into the 429 on their own"
    assert_alive(backend)


def test_500_and_503_retry_with_exponential_backoff_and_jitter(backend_factory, emu, gemini_logs):
    backend = backend_factory(GEMINI_CONCURRENCY="1", **FAST)
    for fault, seed in (("500", 1), ("503", 2)):
        emu.add_fault(fault, count=2)  # the first task's first two attempts
        first, second = predict(backend, [good_task(10 * seed, seed=seed), good_task(10 * seed + 1, seed=3)])
        assert_good(first, seed)
        assert_good(second, 3)
    assert _status(emu, 500) == 2 and _status(emu, 503) == 2
    assert backend.metric("gemini_ls_gemini_retries_total", reason="server") == 4
    waits = [(int(k), float(s)) for k, s in re.findall(r"\(server\), retry (\d+) in ([\d.]+) s", gemini_logs.text)]
    assert [k for k, _ in waits] == [1, 2, 1, 2], gemini_logs.text
    for k, seconds in waits:  # full jitter: uniform(0, base * 2**(k-1)), base 1 s
        assert 0 <= seconds <= 2 ** (k - 1) + 1e-6, (k, seconds)
    assert len({s for _, s in waits}) >= 3, f"no jitter: {waits}"
    assert not failure_reasons(backend)
    assert_alive(backend)


def test_500_for_ever_fails_that_task_after_bounded_retries(backend_factory, emu, gemini_logs):
    backend = backend_factory(GEMINI_CONCURRENCY="1", GEMINI_MAX_RETRIES="2", PREDICT_TIMEOUT="20")
    emu.add_fault("500", count=3)  # the first task's three attempts
    bad, good = predict(backend, [good_task(1), good_task(2)])
    check_contract(backend, gemini_logs, bad, 1, "gemini_server", "server error", "3 attempts")
    assert_good(good, 2)
    assert _status(emu, 500) == 3


def test_dropped_connection_is_retried(backend_factory, emu, gemini_logs):
    backend = backend_factory(GEMINI_CONCURRENCY="1", **FAST)
    emu.add_fault("drop", count=2)
    first, second = predict(backend, [good_task(1), good_task(2)])
    assert_good(first, 1)
    assert_good(second, 2)
    assert emu.counters()["faults"].get("drop") == 2
    assert backend.metric("gemini_ls_gemini_retries_total", reason="connection") == 2
    assert_alive(backend)


def test_dropped_connections_for_ever_fail_that_task(backend_factory, emu, gemini_logs):
    backend = backend_factory(GEMINI_CONCURRENCY="1", GEMINI_MAX_RETRIES="1", PREDICT_TIMEOUT="20")
    emu.add_fault("drop", count=2)
    bad, good = predict(backend, [good_task(1), good_task(2)])
    check_contract(backend, gemini_logs, bad, 1, "gemini_connection", "could not reach gemini")
    assert_good(good, 2)


def test_slow_answer_past_the_deadline_answers_on_time_and_late(backend_factory, emu, image_server, gemini_logs):
    """Gemini takes 6 s for one task; PREDICT_TIMEOUT=3: /predict answers at ~3 s, the slow task
    without `result` (Label Studio asks again), the good one with its regions."""
    backend = backend_factory(GEMINI_CONCURRENCY="2", PREDICT_TIMEOUT="3", GEMINI_TIMEOUT="30", GEMINI_MAX_RETRIES="3")
    emu.add_fault("latency", count=1, args={"seconds": 6})
    good_url = image_server.add("/good.png", png(2), delay=0.4)  # so the slow call is task 1's
    started = time.monotonic()
    slow, good = predict(backend, [good_task(1), url_task(2, good_url)])
    elapsed = time.monotonic() - started
    assert 2.9 <= elapsed < 4.5, elapsed
    assert_good(good, 2)
    error = assert_failed(slow)
    assert "PREDICT_TIMEOUT" in error or "deadline" in error.lower() or "within" in error, error
    logged_for_task(gemini_logs, 1)
    late_or_failed = backend.metric("gemini_ls_tasks_total", outcome="late") + backend.metric(
        "gemini_ls_tasks_total", outcome="failed"
    )
    assert late_or_failed == 1
    assert_alive(backend)


def test_retries_never_push_predict_past_its_deadline(backend_factory, emu, gemini_logs):
    """503 for ever with 10 retries allowed: the deadline, not the retry count, ends it."""
    backend = backend_factory(GEMINI_CONCURRENCY="2", PREDICT_TIMEOUT="3", GEMINI_MAX_RETRIES="10", GEMINI_TIMEOUT="5")
    emu.add_fault("503", rate=1.0)
    started = time.monotonic()
    results = predict(backend, [good_task(1), good_task(2)])
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, f"/predict took {elapsed:.1f} s with PREDICT_TIMEOUT=3"
    for entry, task_id in zip(results, (1, 2)):
        assert_failed(entry)
        logged_for_task(gemini_logs, task_id)
    emu.clear_faults()
    time.sleep(1.0)  # let the background attempts end before the next batch
    (again,) = predict(backend, [good_task(3)])
    assert_good(again, 3)
    assert_alive(backend)


def test_truncated_json_keeps_the_complete_items(backend_factory, emu, gemini_logs):
    backend = backend_factory(GEMINI_CONCURRENCY="1", **FAST)
    emu.add_fault("truncate", count=1, args={"fraction": 0.6})
    big = scene(7, n=8, w=320, h=240)
    trunc_task = {"id": 1, "data": {"image": data_uri(png(7, 8, 320, 240), "image/png")}}
    truncated, good = predict(backend, [trunc_task, good_task(2)])
    assert "result" in truncated, truncated
    kept = truncated["result"]
    assert 0 < len(kept) < len(big.objects), len(kept)
    # every kept region is a real object, in the right place
    from gemini_ls.emulator.scenes import box_iou
    from tests.helpers import label_of, rect_pixels

    for region in kept:
        best = max(
            box_iou(rect_pixels(region), o.box) for o in big.objects if o.colour.capitalize() == label_of(region)
        )
        assert best >= 0.9, region
    assert_good(good, 2)
    assert backend.metric("gemini_ls_gemini_requests_total", kind="boxes", outcome="max_tokens") == 1
    record = logged_for_task(gemini_logs, 1, "truncated")
    assert record is not None
    assert_alive(backend)


def test_fenced_prose_wrapped_json_is_parsed(backend_factory, emu):
    backend = backend_factory(GEMINI_CONCURRENCY="1", **FAST)
    emu.add_fault("prose", count=2)
    results = predict(backend, [good_task(1), good_task(2), good_task(3)])
    for entry, seed in zip(results, (1, 2, 3)):
        assert_good(entry, seed)
    assert emu.counters()["faults"].get("prose") == 2
    assert_alive(backend)


def test_empty_candidates_fail_that_task_clearly(backend_factory, emu, gemini_logs):
    backend = backend_factory(GEMINI_CONCURRENCY="1", **FAST)
    emu.add_fault("empty_candidates", count=1)
    bad, good = predict(backend, [good_task(1), good_task(2)])
    check_contract(backend, gemini_logs, bad, 1, "gemini_empty", "no answer")
    assert_good(good, 2)


def test_safety_block_fails_that_task_with_the_reason(backend_factory, emu, gemini_logs):
    backend = backend_factory(GEMINI_CONCURRENCY="1", **FAST)
    emu.add_fault("safety_block", count=1)
    bad, good = predict(backend, [good_task(1), good_task(2)])
    check_contract(backend, gemini_logs, bad, 1, "gemini_blocked", "blocked", "SAFETY")
    assert_good(good, 2)
    assert _calls(emu) == 2  # a block is Gemini's answer: not retried


def test_file_stuck_in_processing_goes_inline(backend_factory, emu, gemini_logs):
    """GEMINI_FILES=always; the upload stays PROCESSING for ever: after the files layer's wait
    (10 s) the image is sent inline, the stuck file is deleted, nothing stuck is cached."""
    backend = backend_factory(GEMINI_FILES="always", GEMINI_CONCURRENCY="1", PREDICT_TIMEOUT="25")
    emu.add_fault("processing", count=1)
    stuck, good = predict(backend, [good_task(1), good_task(2)])
    assert_good(stuck, 1)
    assert_good(good, 2)
    counters = emu.counters()
    assert counters["uploads"] == 2
    assert counters["requests"].get("files.delete", 0) >= 1, counters
    assert any("PROCESSING" in r.getMessage() for r in gemini_logs.records), gemini_logs.text
    # the stuck upload's URI was never cached: the same image again is uploaded anew or inlined, and works
    (again,) = predict(backend, [good_task(3, seed=1)])
    assert_good(again, 1)
    assert_alive(backend)


def test_expired_file_uri_is_evicted_and_reuploaded(backend_factory, emu, redis_url, redis_prefix, gemini_logs):
    backend = backend_factory(GEMINI_FILES="always", REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, **FAST)
    (first,) = predict(backend, [good_task(1)])
    assert_good(first, 1)
    assert emu.counters()["uploads"] == 1
    assert emu.expire_files() >= 1  # Gemini forgets the file; our cache still holds its URI
    # same image, another task: cache hit -> 403 from Gemini -> evict, re-upload, retry once
    second, other = predict(backend, [good_task(2, seed=1), good_task(3)])
    assert_good(second, 1)
    assert_good(other, 3)
    assert backend.metric("gemini_ls_files_evictions_total") >= 1
    assert emu.counters()["uploads"] == 3  # the re-upload and task 3's image
    assert _status(emu, 403) >= 1
    assert not failure_reasons(backend)
    assert_alive(backend)
