"""gemini/batches.py against the emulator through the real SDK: the requests a batch carries are the
synchronous path's, inlined or as a JSONL file; results come back as the same Replies."""

from __future__ import annotations

import io
import json
import time

import pytest
from google.genai import types

from gemini_ls.backend import build_backend
from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.gemini import batches as gb
from gemini_ls.gemini.files import FilesManager
from gemini_ls.gemini.kinds import KINDS
from gemini_ls.images.prepare import prepare_image
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.plan import plan_requests
from gemini_ls.settings import Settings
from tests.helpers import config, rect_control

CHOICES = ('<Choices name="c" toName="image"><Choice value="Reddish" hint="mostly red"/>'
           '<Choice value="Bluish" hint="mostly blue"/></Choices>')


@pytest.fixture
def backend(emu):
    emu.batches.configure(pending_seconds=0.0)
    settings = Settings(api_key="emulator-key", base_url=emu.url, max_retries=0)
    b = build_backend(settings)
    yield b
    b.runner.shutdown()


def _plans_and_images(n: int = 3):
    spec = parse_label_config(config(rect_control(), CHOICES), Settings().defaults)
    images = []
    for i in range(n):
        scene = make_scene(320 + 16 * i, 240, names=["red square", "blue circle"], seed=40 + i)
        images.append(prepare_image(encode_image(scene.image, "png"), name="image", max_side=1536, max_pixels=10**8))
    return spec, plan_requests(spec), images


def _requests(backend, plans, images):
    files = FilesManager(backend.gateway.files.client, backend.cache, backend.settings.with_(files_policy="always"),
                         backend.metrics)
    out = []
    for t, image in enumerate(images):
        for p, plan in enumerate(plans):
            built = files.build([image], {}, deadline=time.monotonic() + 30)
            assert built.sent[0].how == "file"  # batch images always go as Files API references
            key = f"{t}/{p}"
            out.append((key, plan, gb.inlined_request(backend.settings, KINDS[plan.kind].prompt(plan, 1), built.parts, plan.kind, key)))
    return out


def _finished(client, job):
    return gb.wait(client, job.name, initial=0.02, maximum=0.1)


def test_inline_and_jsonl_carry_the_same_requests_and_give_the_same_replies(emu, backend):
    _spec, plans, images = _plans_and_images()
    client = backend.gateway.files.client
    requests = _requests(backend, plans, images)
    inline, jsonl = gb.BatchWriter(client, inline_limit=10**7), gb.BatchWriter(client, inline_limit=10**7, mode="file")
    try:
        for key, _plan, req in requests:
            inline.add(key, req)
            jsonl.add(key, req)
        assert (inline.source, jsonl.source) == ("inline", "file")
        job_inline = inline.submit(backend.settings.model, "inline")
        job_file = jsonl.submit(backend.settings.model, "file")
        lines = [json.loads(line) for line in open(jsonl.path, "rb")]
    finally:
        inline.discard()
        jsonl.discard()
    assert [line["key"] for line in lines] == [k for k, _p, _r in requests]
    # what the SDK inlined and what our JSONL lines say are one and the same request body
    assert emu.batches.requests_of(job_inline.name) == emu.batches.requests_of(job_file.name) == [ln["request"] for ln in lines]
    body = lines[0]["request"]
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    file_data = body["contents"][0]["parts"][0]["fileData"]  # the SDK writes file_uri in snake case here
    assert "systemInstruction" in body and (file_data.get("fileUri") or file_data["file_uri"]).startswith("https://")

    got_inline = {r.key: r for r in gb.results(client, _finished(client, job_inline))}
    got_file = {r.key: r for r in gb.results(client, _finished(client, job_file))}
    assert set(got_inline) == set(got_file) == {k for k, _p, _r in requests}
    for key, plan, req in requests:
        a, b = got_inline[key].reply, got_file[key].reply
        assert a is not None and b is not None
        assert (a.text, a.finish_reason, a.usage) == (b.text, b.finish_reason, b.usage)
        # ...and the synchronous call of the same request answers the same
        sync = backend.gateway.caller.generate(KINDS[plan.kind].prompt(plan, 1), list(req.contents[0].parts[:-1]), plan.kind,
                                               deadline=time.monotonic() + 30)
        assert json.loads(sync.text) == json.loads(a.text) and sync.usage == a.usage
    assert emu.counters()["batches"]["downloads"] == 1


def test_writer_goes_to_a_file_past_the_inline_limit(emu, backend):
    _spec, plans, images = _plans_and_images(4)
    client = backend.gateway.files.client
    requests = _requests(backend, plans, images)
    writer = gb.BatchWriter(client, inline_limit=3000)
    try:
        for key, _plan, req in requests[:1]:
            writer.add(key, req)
        assert writer.source == "inline"
        for key, _plan, req in requests[1:]:
            writer.add(key, req)
        assert writer.source == "file" and writer._inline is None  # nothing kept in memory from then on
        job = writer.submit(backend.settings.model, "spilled")
    finally:
        writer.discard()
    done = _finished(client, job)
    assert done.dest.file_name and len(list(gb.results(client, done))) == len(requests)
    with pytest.raises(ValueError):
        gb.BatchWriter(client, inline_limit=1, mode="sideways")


def test_errors_per_request_and_orphans_found_by_display_name(emu, backend):
    _spec, plans, images = _plans_and_images(2)
    client = backend.gateway.files.client
    emu.add_fault("503", count=1, routes=["batch.generateContent"])
    writer = gb.BatchWriter(client, inline_limit=10**7)
    try:
        for key, _plan, req in _requests(backend, plans, images):
            writer.add(key, req)
        job = writer.submit(backend.settings.model, "gemini-ls batch:7:v #1")
    finally:
        writer.discard()
    assert gb.find_by_display_name(client, "gemini-ls batch:7:v #1").name == job.name
    assert gb.find_by_display_name(client, "nobody") is None
    results = list(gb.results(client, _finished(client, job)))
    failed = [r for r in results if r.error]
    assert len(failed) == 1 and failed[0].reply is None and "code 14" in failed[0].error
    assert gb.state_word(client.batches.get(name=job.name)) == "SUCCEEDED"


def test_jsonl_results_file_parses_like_inline(emu, genai_client):
    """A results line is a GenerateContentResponse in REST JSON: candidates, usage, finishReason."""
    emu.batches.configure(pending_seconds=0.0)
    scene = make_scene(200, 200, names=["red square"], seed=1)
    part = {"inline_data": {"data": encode_image(scene.image, "png"), "mime_type": "image/png"}}
    src = genai_client.files.upload(
        file=io.BytesIO(json.dumps({"key": "k1", "request": {"contents": [{"parts": [
            {"inlineData": {"data": __import__("base64").b64encode(part["inline_data"]["data"]).decode(),
                            "mimeType": "image/png"}},
            {"text": 'Detect:\n- "Cat": red square'}]}]}}).encode()),
        config={"mime_type": "application/jsonl"})
    job = genai_client.batches.create(model="gemini-2.5-flash", src=src.name)
    (result,) = gb.results(genai_client, gb.wait(genai_client, job.name, initial=0.02, maximum=0.1))
    assert result.key == "k1" and result.reply.finish_reason == "STOP" and result.reply.usage.prompt_tokens > 0
    assert types.JobState.JOB_STATE_SUCCEEDED == genai_client.batches.get(name=job.name).state
