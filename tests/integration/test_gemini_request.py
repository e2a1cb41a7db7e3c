"""GeminiCaller + parser with the real google-genai SDK over real HTTP against the emulator.

No mocks: every test sends real requests to `EmulatorServer` and injects faults the way Gemini
misbehaves (429 with RetryInfo, 5xx, dropped connections, latency, safety blocks, truncated,
fenced or corrupted answers) through the emulator's fault rules or the x-emulator-fault header.
The `emu` fixture (tests/fixtures/emulator.py) resets faults, counters and latency per test.
"""

from __future__ import annotations

import io
import logging
import threading
import time

import pytest
from google.genai import types

from gemini_ls.detections import RequestKind
from gemini_ls.emulator import DEFAULT_API_KEY
from gemini_ls.emulator.scenes import box_iou, encode_image, make_scene
from gemini_ls.gemini.client import make_client
from gemini_ls.gemini.errors import FileRejected, GeminiError
from gemini_ls.gemini.labels import LabelMatcher
from gemini_ls.gemini.parse import parse_choices, parse_detections, parse_text
from gemini_ls.gemini.prompts import choice_prompt, detection_prompt, pointing_prompt, segmentation_prompt, text_prompt
from gemini_ls.gemini.rategate import RateGate
from gemini_ls.gemini.request import GeminiCaller
from gemini_ls.labelconfig import LabelSpec
from gemini_ls.metrics import Metrics
from gemini_ls.settings import Settings

KEY = DEFAULT_API_KEY  # the shared `emu` fixture (tests/fixtures/emulator.py) accepts it
SCENE = make_scene(640, 480, 4, seed=3, names=["red square", "blue circle", "green triangle", "yellow rectangle"])
IMAGE = encode_image(SCENE.image, "png")
LABELS = tuple(LabelSpec(o.name) for o in SCENE.objects)
MATCHER = LabelMatcher(LABELS)
TRUTH = {o.name: o.box for o in SCENE.objects}


def make_caller(emu, *, headers=None, gate=None, metrics=None, **overrides) -> GeminiCaller:
    settings = Settings(api_key=KEY, base_url=emu.url, model="gemini-2.5-flash-lite", max_retries=3, request_timeout=10.0)
    settings = settings.with_(**overrides)
    # rand=0.05: keep the jittered backoff short so the tests are fast, still > 0
    return GeminiCaller(make_client(settings, headers=headers), settings, metrics or Metrics(), gate=gate, rand=lambda: 0.05)


def detect(caller, *, deadline_in=20.0, kind=RequestKind.BOXES, prompt=None):
    prompt = prompt or detection_prompt(LABELS, 25)
    return caller.generate(
        prompt, [types.Part.from_bytes(data=IMAGE, mime_type="image/png")], kind, deadline=time.monotonic() + deadline_in
    )


def assert_matches_truth(detections, minimum: int) -> None:
    assert len(detections) >= minimum
    for d in detections:
        pixel = d.box.to_pixels(SCENE.width, SCENE.height)
        iou = box_iou((pixel.x0, pixel.y0, pixel.x1, pixel.y1), TRUTH[d.label])
        assert iou >= 0.9, (d.label, iou)


def metric(metrics: Metrics, name: str, **labels) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


# --------------------------------------------------------------------------- normal answers


def test_normal_detection_matches_ground_truth(emu):
    metrics = Metrics()
    reply = detect(make_caller(emu, metrics=metrics))
    assert reply.finish_reason == "STOP" and reply.block_reason is None
    assert reply.usage.prompt_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.model_version == "gemini-2.5-flash-lite"
    answer = parse_detections(reply.text, matcher=MATCHER, finish_reason=reply.finish_reason)
    assert sorted(d.label for d in answer.detections) == sorted(TRUTH)
    assert_matches_truth(answer.detections, 4)
    assert all(d.score is not None and 0 < d.score <= 1 for d in answer.detections)
    assert answer.dropped == {}
    assert metric(metrics, "gemini_ls_gemini_requests_total", kind="boxes", outcome="ok") == 1
    assert metric(metrics, "gemini_ls_gemini_tokens_total", direction="input") == reply.usage.prompt_tokens
    assert metrics.registry.get_sample_value("gemini_ls_gemini_seconds_count") == 1


def test_segmentation_masks_decoded(emu):
    reply = detect(make_caller(emu), kind=RequestKind.MASKS, prompt=segmentation_prompt(LABELS, 25))
    answer = parse_detections(reply.text, matcher=MATCHER, finish_reason=reply.finish_reason, want_masks=True)
    assert_matches_truth(answer.detections, 4)
    assert all(d.mask is not None and d.mask.dtype.name == "uint8" and d.mask.ndim == 2 for d in answer.detections)
    assert answer.dropped == {}


@pytest.mark.parametrize("fault", ["mask_tokens", "mask_bool_list"])
def test_degenerate_masks_keep_boxes(emu, fault):
    caller = make_caller(emu, headers={"x-emulator-fault": fault})
    reply = detect(caller, kind=RequestKind.MASKS, prompt=segmentation_prompt(LABELS, 25))
    answer = parse_detections(reply.text, matcher=MATCHER, want_masks=True)
    assert_matches_truth(answer.detections, 4)
    assert all(d.mask is None for d in answer.detections)
    assert answer.dropped == {"bad_mask": 4}


def test_points(emu):
    reply = detect(make_caller(emu), kind=RequestKind.POINTS, prompt=pointing_prompt(LABELS, 25))
    answer = parse_detections(reply.text, matcher=MATCHER, want_points=True)
    assert len(answer.detections) == 4
    for d in answer.detections:
        x0, y0, x1, y1 = TRUTH[d.label]
        x, y = d.point.x / 1000 * SCENE.width, d.point.y / 1000 * SCENE.height
        assert x0 <= x <= x1 and y0 <= y <= y1


def test_two_images_are_labelled_and_indexed(emu):
    other = make_scene(320, 240, 1, seed=9, names=["purple circle"])
    labels = LABELS + (LabelSpec("purple circle"),)
    parts = [
        types.Part.from_bytes(data=IMAGE, mime_type="image/png"),
        types.Part.from_bytes(data=encode_image(other.image, "jpeg"), mime_type="image/jpeg"),
    ]
    reply = make_caller(emu).generate(detection_prompt(labels, 25), parts, RequestKind.BOXES, deadline=time.monotonic() + 20)
    answer = parse_detections(reply.text, matcher=LabelMatcher(labels))
    by_index = {(d.image_index, d.label) for d in answer.detections}
    assert (1, "purple circle") in by_index and (0, "red square") in by_index


def test_choice_and_caption(emu):
    choices = (LabelSpec("red"), LabelSpec("blue"), LabelSpec("magenta"))
    caller = make_caller(emu)
    reply = caller.generate(
        choice_prompt(choices, multiple=True),
        [types.Part.from_bytes(data=IMAGE, mime_type="image/png")],
        RequestKind.CHOICE,
        deadline=time.monotonic() + 20,
    )
    answer = parse_choices(reply.text, choices, multiple=True, finish_reason=reply.finish_reason)
    assert set(answer.choices) == {"red", "blue"}
    reply = caller.generate(
        text_prompt(None), [types.Part.from_bytes(data=IMAGE, mime_type="image/png")], RequestKind.TEXT, deadline=time.monotonic() + 20
    )
    text = parse_text(reply.text).text
    assert text and "\n" not in text


# --------------------------------------------------------------------------- answer-text quirks


@pytest.mark.parametrize("fault", ["prose", "coords_inverted"])
def test_prose_fenced_and_inverted_answers_parsed(emu, fault):
    reply = detect(make_caller(emu, headers={"x-emulator-fault": fault}))
    if fault == "prose":
        assert "```" in reply.text
    answer = parse_detections(reply.text, matcher=MATCHER)
    assert_matches_truth(answer.detections, 4)


def test_out_of_range_coordinates_clamped(emu):
    reply = detect(make_caller(emu, headers={"x-emulator-fault": "coords_out_of_range"}))
    answer = parse_detections(reply.text, matcher=MATCHER)
    assert len(answer.detections) == 4
    assert all(0 <= d.box.ymin and d.box.xmax <= 1000 for d in answer.detections)


def test_truncated_answer_recovered(emu):
    metrics = Metrics()
    reply = detect(make_caller(emu, headers={"x-emulator-fault": "truncate;fraction=0.7"}, metrics=metrics))
    assert reply.finish_reason == "MAX_TOKENS"
    answer = parse_detections(reply.text, matcher=MATCHER, finish_reason=reply.finish_reason)
    assert answer.truncated
    assert_matches_truth(answer.detections, 1)
    assert len(answer.detections) < 4
    assert metric(metrics, "gemini_ls_gemini_requests_total", kind="boxes", outcome="max_tokens") == 1


def test_safety_block_is_a_reply(emu):
    metrics = Metrics()
    reply = detect(make_caller(emu, headers={"x-emulator-fault": "safety_block"}, metrics=metrics))
    assert reply.block_reason == "SAFETY" and reply.text is None
    assert parse_detections(reply.text, matcher=MATCHER).detections == ()
    assert metric(metrics, "gemini_ls_gemini_requests_total", kind="boxes", outcome="blocked") == 1


def test_empty_candidates(emu):
    reply = detect(make_caller(emu, headers={"x-emulator-fault": "empty_candidates"}))
    assert reply.text is None and reply.finish_reason is None and reply.block_reason is None


# --------------------------------------------------------------------------- retries


def test_429_retry_delay_honoured_and_shared(emu):
    gate = RateGate()
    metrics = Metrics()
    emu.add_fault("429", count=1, args={"retry_delay": "1.5"})
    first: dict = {}

    def call_first() -> None:
        start = time.monotonic()
        first["reply"] = detect(make_caller(emu, gate=gate, metrics=metrics))
        first["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=call_first)
    thread.start()
    # Wait until the first caller got its 429 and closed the gate, then start a second caller.
    limit = time.monotonic() + 5
    while gate.until == 0.0 and time.monotonic() < limit:
        time.sleep(0.01)
    assert gate.until > 0.0, "the 429 never reached the gate"
    cooldown_left = gate.until - time.monotonic()
    start = time.monotonic()
    second = detect(make_caller(emu, gate=gate, metrics=metrics))
    second_elapsed = time.monotonic() - start
    thread.join(10)

    assert first["elapsed"] >= 1.5  # RetryInfo honoured (the SDK alone would ignore it)
    assert second_elapsed >= cooldown_left - 0.05 and cooldown_left > 0.5  # the second caller waited too
    assert first["reply"].text and second.text
    # Exactly three calls reached Gemini: the first caller's 429 and its retry, and the second caller.
    counters = emu.counters()
    assert sum(counters["requests"].values()) == 3, counters["requests"]
    assert counters["statuses"] == {"429": 1, "200": 2}  # nobody else hit the wall
    assert metric(metrics, "gemini_ls_gemini_retries_total", reason="rate_limited") == 1


def test_429_delay_past_deadline_gives_up_at_once(emu):
    gate = RateGate()
    emu.add_fault("429", count=1, args={"retry_delay": "30"})
    start = time.monotonic()
    with pytest.raises(GeminiError) as info:
        detect(make_caller(emu, gate=gate), deadline_in=5.0)
    assert time.monotonic() - start < 2.0
    assert info.value.reason == "rate_limited" and info.value.status == 429 and info.value.retryable
    assert "deadline" in str(info.value)
    assert gate.until - time.monotonic() > 25  # the others still know to wait


@pytest.mark.parametrize(("fault", "reason"), [("503", "server"), ("500", "server"), ("drop", "connection")])
def test_transient_failure_then_success(emu, fault, reason):
    metrics = Metrics()
    emu.add_fault(fault, count=1)
    reply = detect(make_caller(emu, metrics=metrics))
    answer = parse_detections(reply.text, matcher=MATCHER)
    assert_matches_truth(answer.detections, 4)
    assert metric(metrics, "gemini_ls_gemini_retries_total", reason=reason) == 1
    assert emu.counters()["requests"]["generateContent"] == 2


def test_backoff_is_exponential_with_full_jitter(emu):
    # Real SDK and HTTP, recorded (not slept) waits: rand=1.0 gives the ceilings 1, 2, 4 s.
    sleeps: list[float] = []
    settings = Settings(api_key=KEY, base_url=emu.url, max_retries=3)
    caller = GeminiCaller(make_client(settings), settings, Metrics(), sleep=sleeps.append, rand=lambda: 1.0)
    emu.add_fault("503", count=3)
    reply = detect(caller, deadline_in=60)
    assert reply.text and sleeps == [1.0, 2.0, 4.0]


def test_retries_bounded_by_max_retries(emu):
    metrics = Metrics()
    emu.add_fault("503", count=10)
    with pytest.raises(GeminiError) as info:
        detect(make_caller(emu, metrics=metrics, max_retries=2))
    assert info.value.status == 503 and info.value.reason == "server"
    assert "gave up after 3 attempts" in str(info.value)
    assert emu.counters()["requests"]["generateContent"] == 3
    assert metric(metrics, "gemini_ls_gemini_requests_total", kind="boxes", outcome="server") == 1


def test_deadline_respected_with_slow_gemini(emu):
    emu.set_latency(4.0)
    caller = make_caller(emu)
    start = time.monotonic()
    with pytest.raises(GeminiError) as info:
        detect(caller, deadline_in=1.5)
    elapsed = time.monotonic() - start
    assert elapsed < 1.5 + 0.6, elapsed
    assert info.value.retryable and info.value.reason in ("timeout", "deadline")


def test_non_retryable_4xx_raised_at_once(emu):
    metrics = Metrics()
    caller = make_caller(emu, metrics=metrics, model="nonexistent-model")
    with pytest.raises(GeminiError) as info:
        detect(caller)
    assert info.value.status == 404 and not info.value.retryable
    assert str(info.value).startswith("Gemini rejected the request: 404 NOT_FOUND")
    assert emu.counters()["requests"]["generateContent"] == 1
    assert metric(metrics, "gemini_ls_gemini_retries_total", reason="server") == 0


def test_bad_key_never_leaks(emu, caplog):
    secret = "fake-gemini-key-SECRET-should-never-show-0123456789"
    settings = Settings(api_key=secret, base_url=emu.url, max_retries=2)
    caller = GeminiCaller(make_client(settings), settings, Metrics(), rand=lambda: 0.0)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(GeminiError) as info:
            detect(caller)
    assert info.value.status in (400, 401, 403) and not info.value.retryable
    assert info.value.reason == "bad_api_key" and "API key" in str(info.value)
    text = str(info.value) + repr(info.value) + repr(caller) + caplog.text
    assert secret not in text


def test_unknown_file_is_file_rejected(emu):
    caller = make_caller(emu)
    part = types_part_from_uri("https://generativelanguage.googleapis.com/v1beta/files/nosuchfile1", "image/png")
    with pytest.raises(FileRejected) as info:
        caller.generate(detection_prompt(LABELS, 25), [part], RequestKind.BOXES, deadline=time.monotonic() + 10)
    assert info.value.status == 403 and info.value.reason == "file_rejected"


def test_processing_file_is_file_rejected(emu):
    caller = make_caller(emu)
    emu.add_fault("processing", count=1)
    uploaded = caller.client.files.upload(file=io.BytesIO(IMAGE), config={"mime_type": "image/png"})
    assert uploaded.state.name == "PROCESSING"
    part = types_part_from_uri(uploaded.uri, "image/png")
    with pytest.raises(FileRejected) as info:
        caller.generate(detection_prompt(LABELS, 25), [part], RequestKind.BOXES, deadline=time.monotonic() + 10)
    assert info.value.status == 400 and "ACTIVE" in str(info.value)


def types_part_from_uri(uri: str, mime_type: str) -> types.Part:
    return types.Part.from_uri(file_uri=uri, mime_type=mime_type)
