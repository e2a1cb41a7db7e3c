"""The emulator's Batch API through the real google-genai SDK: create (inlined and JSONL file),
get, list, cancel, delete, the state machine, per-request failures and results download."""

from __future__ import annotations

import io
import json
import time

import pytest
from google import genai
from google.genai import types

from gemini_ls.emulator.scenes import encode_image, make_scene

from .helpers import parse_json_text

PROMPT = 'Detect these objects:\n- "Cat": red square\nAnswer with a JSON list of {"box_2d": [...], "label": ...}.'


def _request(image: bytes) -> dict:
    return {
        "contents": [{"role": "user", "parts": [
            {"inline_data": {"data": image, "mime_type": "image/png"}},
            {"text": PROMPT},
        ]}],
        "config": {"temperature": 0.5, "response_mime_type": "application/json"},
    }


def _wait(client: genai.Client, name: str, timeout: float = 20.0) -> types.BatchJob:
    end = time.monotonic() + timeout
    while True:
        job = client.batches.get(name=name)
        if job.done or (job.state and job.state.name.endswith(("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"))):
            return job
        assert time.monotonic() < end, f"batch still {job.state} after {timeout} s"
        time.sleep(0.05)


@pytest.fixture
def scene_png() -> bytes:
    scene = make_scene(320, 240, names=["red square", "blue circle"], seed=5)
    return encode_image(scene.image, "png")


def test_inlined_batch_goes_pending_running_succeeded(emu, genai_client, scene_png):
    emu.batches.configure(pending_seconds=0.3, running_seconds=0.3)
    requests = [types.InlinedRequest(model="gemini-2.5-flash", metadata={"key": f"t{i}"}, **_request(scene_png))
                for i in range(3)]
    job = genai_client.batches.create(model="gemini-2.5-flash", src=requests, config={"display_name": "inline-job"})
    assert job.name.startswith("batches/")
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "inline-job"
    seen = set()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        state = genai_client.batches.get(name=job.name).state
        seen.add(state)
        if state == types.JobState.JOB_STATE_SUCCEEDED:
            break
        time.sleep(0.05)
    assert {types.JobState.JOB_STATE_PENDING, types.JobState.JOB_STATE_RUNNING, types.JobState.JOB_STATE_SUCCEEDED} <= seen
    done = genai_client.batches.get(name=job.name)
    assert done.end_time is not None and done.dest is not None
    responses = done.dest.inlined_responses
    assert [r.metadata for r in responses] == [{"key": f"t{i}"} for i in range(3)]
    for r in responses:
        assert r.error is None
        items = parse_json_text(r.response.text)
        assert [i["label"] for i in items] == ["Cat"]
        assert r.response.usage_metadata.prompt_token_count > 0
        assert r.response.usage_metadata.candidates_token_count > 0
    counters = emu.counters()
    assert counters["requests"]["batchGenerateContent"] == 1
    assert counters["requests"]["batch.generateContent"] == 3
    assert "generateContent" not in counters["requests"]  # batch work is not counted as sync calls
    assert counters["batches"]["created"] == 1 and counters["batches"]["succeeded_requests"] == 3


def test_answers_equal_the_synchronous_ones(emu, genai_client, scene_png):
    emu.batches.configure(pending_seconds=0.0)
    req = _request(scene_png)
    sync = genai_client.models.generate_content(model="gemini-2.5-flash", contents=req["contents"], config=req["config"])
    job = genai_client.batches.create(model="gemini-2.5-flash", src=[types.InlinedRequest(**req)])
    batch = _wait(genai_client, job.name).dest.inlined_responses[0].response
    assert parse_json_text(batch.text) == parse_json_text(sync.text)
    assert batch.usage_metadata.prompt_token_count == sync.usage_metadata.prompt_token_count


def test_jsonl_file_source_gives_a_downloadable_results_file(emu, genai_client, scene_png):
    emu.batches.configure(pending_seconds=0.0)
    image = genai_client.files.upload(file=io.BytesIO(scene_png), config={"mime_type": "image/png"})
    lines = []
    for i in range(4):
        request = {"contents": [{"role": "user", "parts": [
            {"fileData": {"fileUri": image.uri, "mimeType": "image/png"}}, {"text": PROMPT}]}],
            "generationConfig": {"responseMimeType": "application/json"}}
        lines.append(json.dumps({"key": f"task-{i}", "request": request}))
    source = genai_client.files.upload(file=io.BytesIO("\n".join(lines).encode()),
                                       config={"mime_type": "application/jsonl", "display_name": "input"})
    job = genai_client.batches.create(model="gemini-2.5-flash", src=source.name)
    done = _wait(genai_client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest.inlined_responses is None and done.dest.file_name.startswith("files/")
    sink = io.BytesIO()
    genai_client.files.download(file=done.dest.file_name, destination=sink)
    out = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [o["key"] for o in out] == [f"task-{i}" for i in range(4)]
    for o in out:
        response = types.GenerateContentResponse.model_validate(o["response"])
        assert [i["label"] for i in parse_json_text(response.text)] == ["Cat"]
        assert response.usage_metadata.total_token_count > 0
    meta = genai_client.files.get(name=done.dest.file_name)
    assert meta.source == types.FileSource.GENERATED and meta.download_uri
    # uploaded files are not downloadable, as on the service
    with pytest.raises(genai.errors.APIError):
        genai_client.files.download(file=source.name)


def test_per_request_failures_at_a_rate(emu, genai_client, scene_png):
    emu.batches.configure(pending_seconds=0.0)
    emu.add_fault("500", rate=0.3, routes=["batch.generateContent"])
    n = 40
    requests = [types.InlinedRequest(metadata={"key": str(i)}, **_request(scene_png)) for i in range(n)]
    done = _wait(genai_client, genai_client.batches.create(model="gemini-2.5-flash", src=requests).name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    errors = [r for r in done.dest.inlined_responses if r.error is not None]
    assert 3 <= len(errors) <= 25
    for r in errors:
        assert r.response is None and r.error.code == 13 and r.error.message
    assert emu.counters()["batches"]["failed_requests"] == len(errors)


def test_cancel_list_delete(emu, genai_client, scene_png):
    emu.batches.configure(pending_seconds=30)
    first = genai_client.batches.create(model="gemini-2.5-flash", src=[types.InlinedRequest(**_request(scene_png))],
                                        config={"display_name": "one"})
    second = genai_client.batches.create(model="gemini-2.5-flash", src=[types.InlinedRequest(**_request(scene_png))],
                                         config={"display_name": "two"})
    names = {j.name: j.display_name for j in genai_client.batches.list(config={"page_size": 1})}
    assert names == {first.name: "one", second.name: "two"}  # the pager follows nextPageToken
    genai_client.batches.cancel(name=first.name)
    cancelled = genai_client.batches.get(name=first.name)
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.dest is None
    genai_client.batches.delete(name=second.name)
    with pytest.raises(genai.errors.APIError) as info:
        genai_client.batches.get(name=second.name)
    assert info.value.code == 404
    counters = emu.counters()["batches"]
    assert counters["cancelled"] == 1 and counters["deleted"] == 1


@pytest.mark.parametrize("end_state", ["FAILED", "EXPIRED"])
def test_forced_end_states_have_no_output(emu, genai_client, scene_png, end_state):
    emu.batches.configure(pending_seconds=0.0, end_state=end_state)
    done = _wait(genai_client, genai_client.batches.create(
        model="gemini-2.5-flash", src=[types.InlinedRequest(**_request(scene_png))]).name)
    assert done.state == types.JobState(f"JOB_STATE_{end_state}")
    assert done.dest is None


def test_bad_inputs_are_clear_errors(emu, genai_client):
    with pytest.raises(genai.errors.APIError) as info:
        genai_client.batches.create(model="not-a-model", src=[types.InlinedRequest(contents="hi")])
    assert info.value.code == 404
    bad = genai_client.files.upload(file=io.BytesIO(b"{not json\n"), config={"mime_type": "application/jsonl"})
    with pytest.raises(genai.errors.APIError) as info:
        genai_client.batches.create(model="gemini-2.5-flash", src=bad.name)
    assert info.value.code == 400 and "Line 1" in info.value.message
    with pytest.raises(genai.errors.APIError) as info:
        genai_client.batches.get(name="batches/doesnotexist")
    assert info.value.code == 404


def test_control_endpoint_configures(emu):
    import requests

    r = requests.post(f"{emu.url}/_emulator/batches", json={"pending_seconds": 1.5, "end_state": "EXPIRED"}, timeout=5)
    assert r.status_code == 200 and r.json()["config"]["pending_seconds"] == 1.5
    assert emu.batches.config.end_state == "EXPIRED"
    r = requests.post(f"{emu.url}/_emulator/batches", json={"end_state": "LOST"}, timeout=5)
    assert r.status_code == 400
