"""Contract of gemini/sdk_serialiser.py, the one call into the SDK's private request serialiser.

The expected JSON is the captured generateContent wire format: camelCase top-level and config
keys, snake_case nested keys, URL-safe base64, the system instruction as a user turn. An SDK
upgrade that renames `_InlinedRequest_to_mldev` or `_common.convert_to_dict` breaks the import or
the call; one that reshapes the body breaks the equality. Both fail here before a batch is ever sent with a body the service would not take.
"""

from __future__ import annotations

import base64
import io

from google import genai
from google.genai import types
from PIL import Image

from gemini_ls.gemini.sdk_serialiser import request_json

FILE_URI = "https://generativelanguage.googleapis.com/v1beta/files/abc123xyz"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _config() -> types.GenerateContentConfig:
    box = types.Schema(
        type="OBJECT",
        properties={"box_2d": types.Schema(type="ARRAY", items=types.Schema(type="INTEGER")), "label": types.Schema(type="STRING")},
        property_ordering=["box_2d", "label"],
        required=["box_2d", "label"],
    )
    return types.GenerateContentConfig(
        system_instruction="Return bounding boxes as a JSON array.",
        temperature=0.5,
        max_output_tokens=8192,
        seed=42,
        response_mime_type="application/json",
        response_schema=types.Schema(type="ARRAY", items=box),
        media_resolution="MEDIA_RESOLUTION_HIGH",
        thinking_config=types.ThinkingConfig(thinking_budget=0),
        safety_settings=[types.SafetySetting(category="HARM_CATEGORY_DANGEROUS_CONTENT", threshold="BLOCK_ONLY_HIGH")],
    )


def _offline_client() -> genai.Client:
    # The serialiser never sends anything; the client only carries the API flavour (Gemini API, not Vertex).
    return genai.Client(api_key="unused", http_options=types.HttpOptions(base_url="http://127.0.0.1:9", api_version="v1beta"))


def test_request_json_is_the_documented_wire_body():
    png = _png()
    request = types.InlinedRequest(
        model="gemini-2.5-flash",
        contents=[types.Content(role="user", parts=[
            types.Part(file_data=types.FileData(file_uri=FILE_URI, mime_type="image/png")),
            types.Part(inline_data=types.Blob(data=png, mime_type="image/png"),
                       media_resolution=types.PartMediaResolution(level="MEDIA_RESOLUTION_HIGH")),
            types.Part.from_text(text="Detect the 2d bounding boxes of the cats"),
        ])],
        config=_config(),
        metadata={"key": "task-1"},
    )
    assert request_json(_offline_client(), request) == {
        "model": "models/gemini-2.5-flash",
        "contents": [{"role": "user", "parts": [
            {"fileData": {"file_uri": FILE_URI, "mime_type": "image/png"}},
            {"mediaResolution": {"level": "MEDIA_RESOLUTION_HIGH"},
             "inlineData": {"data": base64.urlsafe_b64encode(png).decode(), "mime_type": "image/png"}},
            {"text": "Detect the 2d bounding boxes of the cats"},
        ]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "Return bounding boxes as a JSON array."}]},
        "safetySettings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_ONLY_HIGH"}],
        "generationConfig": {
            "temperature": 0.5,
            "maxOutputTokens": 8192,
            "seed": 42,
            "responseMimeType": "application/json",
            "responseSchema": {"type": "ARRAY", "items": {
                "type": "OBJECT",
                "properties": {"box_2d": {"type": "ARRAY", "items": {"type": "INTEGER"}}, "label": {"type": "STRING"}},
                "property_ordering": ["box_2d", "label"],
                "required": ["box_2d", "label"],
            }},
            "mediaResolution": "MEDIA_RESOLUTION_HIGH",
            "thinkingConfig": {"thinking_budget": 0},
        },
    }


def test_request_json_matches_what_a_synchronous_call_sends(emu, genai_client):
    """A JSONL line carries the body generate_content puts on the wire (the emulator records it)."""
    contents = [types.Content(role="user", parts=[
        types.Part(inline_data=types.Blob(data=_png(), mime_type="image/png")),
        types.Part.from_text(text="Detect the 2d bounding boxes of the red squares"),
    ])]
    emu.record(keep=1)
    genai_client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=_config())
    sent = emu.recorded[-1]
    line = request_json(genai_client, types.InlinedRequest(model="gemini-2.5-flash", contents=contents, config=_config()))
    assert line.pop("model") == "models/gemini-2.5-flash"
    assert line == sent
