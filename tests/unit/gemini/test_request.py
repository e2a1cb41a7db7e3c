"""request.py, rategate.py and wire.py, pure parts: RetryInfo parsing, backoff arithmetic, the
shared RateGate (fake clock), part ordering, and turning SDK response values into a Reply. The
retry loop itself runs against the emulator with the real SDK in tests/integration/test_gemini_request.py."""

from __future__ import annotations

import threading

import pytest
from google.genai import types

from gemini_ls.gemini.errors import GeminiError
from gemini_ls.gemini.rategate import RateGate
from gemini_ls.gemini.request import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    GeminiCaller,
    backoff_delay,
    parse_duration,
    retry_delay_from,
)
from gemini_ls.gemini.wire import Usage, build_parts, reply_from


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


# --------------------------------------------------------------------------- RetryInfo


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7s", 7.0), ("1.5s", 1.5), ("53.0s", 53.0), (" 2s ", 2.0), ("0s", 0.0), ("3", 3.0), (4, 4.0), (0.25, 0.25),
     ({"seconds": 7, "nanos": 500_000_000}, 7.5), ("-1s", None), ("7m", None), ("", None), (None, None), (True, None), ([], None)],
)
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


def test_retry_delay_from_error_body():
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
    ]}}
    assert retry_delay_from(body) == 7.0


@pytest.mark.parametrize(
    "body",
    [
        None,
        "x",
        {},
        {"error": {}},
        {"error": {"details": "x"}},
        {"error": {"details": [{"@type": "other", "retryDelay": "3s"}]}},
        {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soon"}]}},
    ],
)
def test_retry_delay_absent_or_invalid(body):
    assert retry_delay_from(body) is None


# --------------------------------------------------------------------------- backoff


def test_full_jitter_backoff_bounds():
    assert [backoff_delay(n, lambda: 1.0) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, BACKOFF_CAP, BACKOFF_CAP]
    assert backoff_delay(3, lambda: 0.0) == 0.0
    assert backoff_delay(2, lambda: 0.5) == 0.5 * BACKOFF_BASE * 4
    assert backoff_delay(1, lambda: 7.0) == 2.0  # a misbehaving rand cannot push past the ceiling


# --------------------------------------------------------------------------- RateGate


def test_gate_open_by_default():
    t = FakeTime()
    assert RateGate(clock=t.clock, sleep=t.sleep).wait(deadline=t.now + 1) is False  # closed: no probe
    assert t.sleeps == []


def test_gate_waits_out_the_cooldown():
    t = FakeTime()
    gate = RateGate(clock=t.clock, sleep=t.sleep)
    gate.cool_down(7.0)
    start = t.now
    assert gate.wait(deadline=start + 60) is True  # the first one after the cool-down probes
    assert t.now - start == pytest.approx(7.0)
    gate.probe_done(ok=True)
    assert gate.wait(deadline=t.now + 60) is False  # closed again: no more sleeping
    assert sum(t.sleeps) == pytest.approx(7.0)
    assert gate.status() is None


def test_gate_caps_the_cooldown_gemini_asks_for():
    """A retryDelay of 100000 s (a daily quota) must not stop every prediction until a restart."""
    t = FakeTime()
    gate = RateGate(max_cooldown=60.0, clock=t.clock, sleep=t.sleep)
    assert gate.cool_down(100_000.0) == 60.0
    status = gate.status()
    assert status["state"] == "open" and status["seconds_left"] == 60.0 and status["until"].endswith("Z")
    gate.wait(deadline=t.now + 90)
    assert sum(t.sleeps) == pytest.approx(60.0)


def test_gate_half_open_lets_one_probe_through_and_holds_the_others():
    t = FakeTime()
    gate = RateGate(max_cooldown=5.0, poll=0.5, clock=t.clock, sleep=t.sleep)
    gate.cool_down(100.0)
    assert gate.wait(deadline=t.now + 30) is True  # the probe, at the end of the 5 s
    assert gate.status() == {"state": "half_open", "probe_in_flight": True}
    with pytest.raises(GeminiError) as info:  # another caller may not overtake the probe ...
        gate.wait(deadline=t.now + 2)
    assert info.value.reason == "rate_limited" and "probed" in str(info.value)
    before = t.now
    gate.cool_down(100.0)  # ... and the probe met another 429: open again, capped again
    assert gate.until == pytest.approx(before + 5.0)
    assert gate.wait(deadline=t.now + 30) is True  # the next probe
    gate.probe_done(ok=False)  # a 500 is no answer about the quota: the next caller probes
    assert gate.wait(deadline=t.now + 30) is True
    gate.probe_done(ok=True)
    assert gate.wait(deadline=t.now + 30) is False and gate.status() is None


def test_gate_probe_that_never_reports_is_replaced_after_its_lease():
    t = FakeTime()
    gate = RateGate(max_cooldown=1.0, probe_lease=10.0, poll=0.5, clock=t.clock, sleep=t.sleep)
    gate.cool_down(1.0)
    assert gate.wait(deadline=t.now + 30) is True  # this probe's thread dies without a word
    start = t.now
    assert gate.wait(deadline=t.now + 30) is True  # the lease ran out: another caller probes
    assert 10.0 <= t.now - start <= 11.0


def test_gate_keeps_the_longer_cooldown():
    t = FakeTime()
    gate = RateGate(clock=t.clock, sleep=t.sleep)
    gate.cool_down(10.0)
    gate.cool_down(2.0)
    gate.wait(deadline=t.now + 60)
    assert sum(t.sleeps) == pytest.approx(10.0)


def test_gate_past_deadline_raises_without_sleeping():
    t = FakeTime()
    gate = RateGate(clock=t.clock, sleep=t.sleep)
    gate.cool_down(53.0)
    with pytest.raises(GeminiError) as info:
        gate.wait(deadline=t.now + 30)
    assert info.value.reason == "rate_limited" and info.value.retryable and t.sleeps == []


def test_gate_is_shared_between_threads():
    import time

    gate = RateGate()
    gate.cool_down(0.3)
    waited: list[float] = []

    def worker() -> None:
        start = time.monotonic()
        if gate.wait(deadline=start + 5):
            gate.probe_done(ok=True)  # the probe's call succeeded: the others follow
        waited.append(time.monotonic() - start)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(5)
    assert len(waited) == 3 and all(w >= 0.25 for w in waited)


# --------------------------------------------------------------------------- parts


def test_single_image_then_prompt():
    image = types.Part.from_bytes(data=b"\x89PNG...", mime_type="image/png")
    parts = build_parts([image], "Detect cats")
    assert parts[0].inline_data.data == b"\x89PNG..." and parts[0].inline_data.mime_type == "image/png"
    assert parts[1].text == "Detect cats" and len(parts) == 2


def test_several_images_are_labelled():
    images = [
        types.Part.from_bytes(data=b"a", mime_type="image/png"),
        types.Part.from_uri(file_uri="https://x/files/abc", mime_type="image/jpeg"),
    ]
    parts = build_parts(images, "What differs?")
    assert [p.text for p in parts] == ["Image 1:", None, "Image 2:", None, "What differs?"]
    assert parts[3].file_data.file_uri == "https://x/files/abc"


# --------------------------------------------------------------------------- reply_from (real SDK values)


def _response(body: dict) -> types.GenerateContentResponse:
    return types.GenerateContentResponse.model_validate(body)


def test_reply_normal():
    reply = reply_from(
        _response(
            {
                "candidates": [{"content": {"parts": [{"text": "[1"}, {"text": "]"}], "role": "model"}, "finish_reason": "STOP"}],
                "usage_metadata": {"prompt_token_count": 270, "candidates_token_count": 30, "thoughts_token_count": 5},
                "model_version": "gemini-2.5-flash",
            }
        )
    )
    assert reply.text == "[1]" and reply.finish_reason == "STOP" and reply.block_reason is None
    assert reply.usage == Usage(270, 30, 5) and reply.model_version == "gemini-2.5-flash"


def test_reply_skips_thought_parts():
    reply = reply_from(_response({"candidates": [{"content": {"parts": [{"text": "hmm", "thought": True}, {"text": "[]"}]}}]}))
    assert reply.text == "[]"


def test_reply_issue9_thinking_used_all_tokens():
    reply = reply_from(
        _response(
            {
                "candidates": [{"content": {"role": "model"}, "finish_reason": "MAX_TOKENS"}],
                "usage_metadata": {"thoughts_token_count": 8000},
            }
        )
    )
    assert reply.text is None and reply.finish_reason == "MAX_TOKENS" and reply.usage.thoughts_tokens == 8000


def test_reply_prompt_blocked():
    reply = reply_from(_response({"prompt_feedback": {"block_reason": "SAFETY"}}))
    assert reply.text is None and reply.block_reason == "SAFETY" and reply.usage == Usage(0, 0, 0)


def test_reply_candidate_blocked():
    reply = reply_from(_response({"candidates": [{"finish_reason": "SAFETY"}]}))
    assert reply.block_reason == "SAFETY" and reply.finish_reason == "SAFETY"


def test_reply_empty_candidates():
    reply = reply_from(_response({"candidates": []}))
    assert reply.text is None and reply.finish_reason is None and reply.block_reason is None


def test_caller_repr_has_no_key():
    from gemini_ls.gemini.client import make_client
    from gemini_ls.metrics import Metrics
    from gemini_ls.settings import Settings

    key = "fake-gemini-key-do-not-leak-0123456789"
    settings = Settings(api_key=key, base_url="http://127.0.0.1:1")
    caller = GeminiCaller(make_client(settings), settings, Metrics())
    assert key not in repr(caller)


def test_no_call_when_the_deadline_has_passed():
    from gemini_ls.detections import RequestKind
    from gemini_ls.gemini.client import make_client
    from gemini_ls.gemini.prompts import text_prompt
    from gemini_ls.metrics import Metrics
    from gemini_ls.settings import Settings

    t = FakeTime()
    settings = Settings(api_key="k", base_url="http://127.0.0.1:1")  # nothing listens there
    metrics = Metrics()
    caller = GeminiCaller(make_client(settings), settings, metrics, sleep=t.sleep, clock=t.clock)
    with pytest.raises(GeminiError) as info:
        caller.generate(
            text_prompt(None), [types.Part.from_bytes(data=b"x", mime_type="image/png")], RequestKind.TEXT, deadline=t.now + 0.1
        )
    assert info.value.reason == "deadline" and t.sleeps == []
    assert metrics.registry.get_sample_value("gemini_ls_gemini_requests_total", {"kind": "text", "outcome": "deadline"}) == 1
