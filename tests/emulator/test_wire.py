"""Wire format, Files API and auth, through the real google-genai SDK (and raw HTTP where the SDK
cannot express a case)."""

from __future__ import annotations

import base64
import io
import json
import os

import httpx
import pytest
from google import genai
from google.genai import errors, types

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY

from .helpers import parse_json_text

MODEL = "gemini-2.5-flash"


@pytest.fixture
def png() -> bytes:
    return encode_image(make_scene(640, 480, names=["red square", "blue circle"], seed=1).image, "png")


def client_for(emu, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=emu.url, api_version="v1beta"))


def test_inline_generate_content_response_shape(genai_client, png):
    resp = genai_client.models.generate_content(
        model=MODEL, contents=[types.Part.from_bytes(data=png, mime_type="image/png"), "Detect the red squares"]
    )
    cand = resp.candidates[0]
    assert cand.finish_reason == types.FinishReason.STOP and cand.index == 0 and cand.content.role == "model"
    assert resp.model_version == MODEL and resp.response_id
    items = parse_json_text(resp.text)
    assert [i["label"] for i in items] == ["red square"]
    usage = resp.usage_metadata
    details = {d.modality.value: d.token_count for d in usage.prompt_tokens_details}
    assert details["IMAGE"] == 1032  # 640x480: crop 320, 2x2 tiles
    assert usage.prompt_token_count == details["IMAGE"] + details["TEXT"]
    # as on the service, the total includes thinking (2.5 Flash thinks by default without a thinking config)
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count


def test_without_json_mode_answers_fenced_and_with_json_mode_bare(genai_client, png):
    part = types.Part.from_bytes(data=png, mime_type="image/png")
    fenced = genai_client.models.generate_content(model=MODEL, contents=[part, "Detect the blue circles"])
    assert "```json" in fenced.text
    bare = genai_client.models.generate_content(
        model=MODEL, contents=[part, "Detect the blue circles"],
        config=types.GenerateContentConfig(response_mime_type="application/json"),
    )
    assert json.loads(bare.text)[0]["label"] == "blue circle"
    again = genai_client.models.generate_content(model=MODEL, contents=[part, "Detect the blue circles"])
    assert again.text == fenced.text  # deterministic per request content


def test_files_upload_get_list_delete_and_file_data(genai_client, png):
    f = genai_client.files.upload(file=io.BytesIO(png), config=types.UploadFileConfig(mime_type="image/png", display_name="s.png"))
    assert f.name.startswith("files/") and f.name[6:].isalnum() and f.name[6:].islower()
    assert f.state == types.FileState.ACTIVE and f.size_bytes == len(png) and f.display_name == "s.png"
    assert f.uri.startswith("https://") and f.expiration_time is not None
    assert (f.expiration_time - f.create_time).total_seconds() == pytest.approx(48 * 3600, abs=1)
    got = genai_client.files.get(name=f.name)
    assert got.name == f.name and got.mime_type == "image/png"
    assert f.name in [x.name for x in genai_client.files.list()]
    resp = genai_client.models.generate_content(model=MODEL, contents=[f, "Point to the red square"])
    (item,) = parse_json_text(resp.text)
    assert "point" in item and item["label"] == "red square"
    tokens = genai_client.models.count_tokens(model=MODEL, contents=[f, "Point to the red square"])
    assert tokens.total_tokens == resp.usage_metadata.prompt_token_count
    genai_client.files.delete(name=f.name)
    with pytest.raises(errors.ClientError) as exc:
        genai_client.files.get(name=f.name)
    assert exc.value.code == 403 and exc.value.status == "PERMISSION_DENIED"
    assert "You do not have permission to access the File" in exc.value.message


def test_big_upload_goes_in_two_chunks(genai_client, emu):
    data = os.urandom(9 * 1024 * 1024)
    f = genai_client.files.upload(file=io.BytesIO(data), config=types.UploadFileConfig(mime_type="application/octet-stream"))
    assert f.size_bytes == len(data)
    counters = emu.counters()
    assert counters["requests"]["upload_chunk"] == 2 and counters["uploads"] == 1
    assert counters["bytes_received"] >= len(data)


def test_count_tokens_tiling(genai_client):
    for (w, h), expected in [((384, 384), 258), ((385, 385), 1032), ((960, 540), 1548), ((3000, 1000), 2580)]:
        data = encode_image(make_scene(w, h, 1, seed=1).image, "jpeg")
        resp = genai_client.models.count_tokens(model=MODEL, contents=[types.Part.from_bytes(data=data, mime_type="image/jpeg")])
        image = [d for d in resp.to_json_dict().get("prompt_tokens_details", []) if d["modality"] == "IMAGE"]
        assert resp.total_tokens == expected
        assert image == [] or image[0]["token_count"] == expected


def test_other_key_expired_and_processing_files(genai_client, emu, png):
    emu.add_api_key("second-key")
    f = genai_client.files.upload(file=io.BytesIO(png), config=types.UploadFileConfig(mime_type="image/png"))
    other = client_for(emu, "second-key")
    for call in (
        lambda: other.files.get(name=f.name),
        lambda: other.models.generate_content(model=MODEL, contents=[f, "Detect the red squares"]),
    ):
        with pytest.raises(errors.ClientError) as exc:
            call()
        assert exc.value.code == 403 and exc.value.status == "PERMISSION_DENIED"
    assert f.name not in [x.name for x in other.files.list()]

    emu.add_fault("processing")
    stuck = genai_client.files.upload(file=io.BytesIO(png), config=types.UploadFileConfig(mime_type="image/png"))
    assert stuck.state == types.FileState.PROCESSING
    with pytest.raises(errors.ClientError) as exc:
        genai_client.models.generate_content(model=MODEL, contents=[stuck, "Detect the red squares"])
    assert exc.value.code == 400 and exc.value.status == "FAILED_PRECONDITION"
    assert "is not in an ACTIVE state" in exc.value.message
    emu.set_file_state(stuck.name[6:], "ACTIVE")
    assert genai_client.files.get(name=stuck.name).state == types.FileState.ACTIVE

    r = httpx.post(emu.url + "/_emulator/files/expire", json={})
    assert r.status_code == 200 and r.json()["expired"] >= 2
    with pytest.raises(errors.ClientError) as exc:
        genai_client.models.generate_content(model=MODEL, contents=[f, "Detect the red squares"])
    assert exc.value.code == 403


def test_processing_with_timeout_becomes_active(genai_client, emu, png):
    httpx.post(emu.url + "/_emulator/faults", json={"fault": "processing", "count": 1, "args": {"seconds": 0.3}})
    f = genai_client.files.upload(file=io.BytesIO(png), config=types.UploadFileConfig(mime_type="image/png"))
    assert f.state == types.FileState.PROCESSING
    import time

    time.sleep(0.4)
    assert genai_client.files.get(name=f.name).state == types.FileState.ACTIVE


def test_short_file_ttl():
    from gemini_ls.emulator.server import EmulatorServer

    with EmulatorServer(file_ttl_seconds=0.2) as server:
        client = client_for(server, DEFAULT_API_KEY)
        f = client.files.upload(file=io.BytesIO(b"x" * 10), config=types.UploadFileConfig(mime_type="image/png"))
        assert (f.expiration_time - f.create_time).total_seconds() == pytest.approx(0.2, abs=0.01)
        import time

        time.sleep(0.3)
        with pytest.raises(errors.ClientError) as exc:
            client.files.get(name=f.name)
        assert exc.value.code == 403


def test_api_key_errors(emu, png):
    bad = client_for(emu, "nope")  # keep a reference: a collected Client closes its transport
    with pytest.raises(errors.ClientError) as exc:
        bad.models.generate_content(model=MODEL, contents="hi")
    assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT"
    assert exc.value.message == "API key not valid. Please pass a valid API key."
    for path, method in [
        ("/v1beta/models/gemini-2.5-flash:generateContent", "POST"),
        ("/v1beta/files", "GET"),
        ("/upload/v1beta/files", "POST"),
    ]:
        r = httpx.request(method, emu.url + path, json={"contents": [{"parts": [{"text": "hi"}]}]})
        assert r.status_code == 403
        err = r.json()["error"]
        assert err["status"] == "PERMISSION_DENIED" and set(err) == {"code", "message", "status", "details"}
    # a key added through the control endpoint works
    assert httpx.post(emu.url + "/_emulator/api_keys", json={"key": "added-key"}).status_code == 200
    added = client_for(emu, "added-key")
    assert added.models.generate_content(model=MODEL, contents="hi").text


def test_snake_and_camel_case_standard_base64_and_versions(emu, png):
    h = {"x-goog-api-key": DEFAULT_API_KEY}
    std = base64.b64encode(png).decode()
    for version, body in [
        (
            "v1",
            {
                "contents": [{"parts": [{"inline_data": {"data": std, "mimeType": "image/png"}}, {"text": "Detect the red squares"}]}],
                "generation_config": {"response_mime_type": "application/json"},
            },
        ),
        (
            "v1alpha",
            {
                "contents": [
                    {
                        "parts": [
                            {"inlineData": {"data": base64.urlsafe_b64encode(png).decode().rstrip("="), "mime_type": "image/png"}},
                            {"text": "Detect the red squares"},
                        ]
                    }
                ],
                "generationConfig": {"responseMimeType": "application/json"},
                "system_instruction": {"parts": [{"text": "Be brief."}]},
            },
        ),
    ]:
        r = httpx.post(f"{emu.url}/{version}/models/gemini-2.5-flash:generateContent", json=body, headers=h)
        assert r.status_code == 200, r.text
        out = r.json()
        assert set(out) >= {"candidates", "usageMetadata", "modelVersion", "responseId"}
        assert out["candidates"][0]["finishReason"] == "STOP"
        assert json.loads(out["candidates"][0]["content"]["parts"][0]["text"])[0]["label"] == "red square"


def test_unsupported_mime_and_garbage(genai_client):
    for data, mime in [(b"GIF89a....", "image/gif"), (b"%PDF-1.4", "application/pdf"), (b"not an image", "image/png")]:
        with pytest.raises(errors.ClientError) as exc:
            genai_client.models.generate_content(model=MODEL, contents=[types.Part.from_bytes(data=data, mime_type=mime), "hi"])
        assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT"


def test_unknown_model_is_404(genai_client):
    with pytest.raises(errors.ClientError) as exc:
        genai_client.models.generate_content(model="no-such-model", contents="hi")
    assert exc.value.code == 404 and "not found for API version v1beta" in exc.value.message


def test_upload_chunk_responses_always_carry_status(emu):
    r = httpx.post(
        emu.url + "/upload/v1beta/files?upload_id=bogus&upload_protocol=resumable",
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"},
        content=b"abc",
    )
    assert r.status_code == 404 and r.headers["x-goog-upload-status"] == "final"
    start = httpx.post(
        emu.url + "/upload/v1beta/files",
        json={"file": {"mime_type": "image/png"}},
        headers={"x-goog-api-key": DEFAULT_API_KEY, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"},
    )
    url = start.headers["x-goog-upload-url"]
    assert url.startswith(emu.url + "/upload/v1beta/files?upload_id=")
    bad = httpx.post(url, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "5"}, content=b"abc")
    assert bad.status_code == 400 and bad.headers["x-goog-upload-status"] == "final"
    ok = httpx.post(url, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"}, content=b"abc")
    assert ok.status_code == 200 and ok.headers["x-goog-upload-status"] == "active"
    fin = httpx.post(url, headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "3"}, content=b"de")
    assert fin.headers["x-goog-upload-status"] == "final" and fin.json()["file"]["sizeBytes"] == "5"
