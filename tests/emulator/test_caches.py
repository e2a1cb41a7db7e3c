"""The emulator's cachedContents API, driven by google-genai's own `client.caches.*` over HTTP: the
resource's fields, TTL update, listing, deletion, the minimum size, expiry, ownership by API key,
and a generateContent naming a cache (its tokens reported as cachedContentTokenCount)."""

from __future__ import annotations

import datetime as dt

import pytest
from google import genai
from google.genai import errors, types

from gemini_ls.emulator.scenes import encode_image, make_scene

MODEL = "gemini-2.5-flash-lite"  # minimum 2,048 tokens; a 640x480 image is 4 tiles of 258


def example_turns(n: int) -> list[types.Content]:
    out = []
    for i in range(n):
        sc = make_scene(640, 480, 3, seed=50 + i)
        out.append(types.Content(role="user", parts=[types.Part.from_bytes(data=encode_image(sc.image, "png"), mime_type="image/png"),
                                                     types.Part.from_text(text="Detect every object.")]))
        out.append(types.Content(role="model", parts=[types.Part.from_text(text="[]")]))
    return out


def test_create_get_update_list_delete(genai_client, emu):
    made = genai_client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(
        contents=example_turns(3), system_instruction="You detect objects.", ttl="300s", display_name="few-shot e1"))
    assert made.name.startswith("cachedContents/") and made.model == f"models/{MODEL}"
    assert made.display_name == "few-shot e1" and made.usage_metadata.total_token_count >= 3 * 4 * 258
    left = (made.expire_time - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 290 < left <= 300
    assert genai_client.caches.get(name=made.name).expire_time == made.expire_time
    longer = genai_client.caches.update(name=made.name, config=types.UpdateCachedContentConfig(ttl="900s"))
    assert (longer.expire_time - dt.datetime.now(dt.timezone.utc)).total_seconds() > 890
    assert [c.name for c in genai_client.caches.list()] == [made.name]
    genai_client.caches.delete(name=made.name)
    with pytest.raises(errors.ClientError) as gone:
        genai_client.caches.get(name=made.name)
    assert gone.value.code == 404
    assert emu.counters()["caches"] == {"live": 0, "created": 1, "deleted": 1}


def test_below_the_models_minimum_is_refused(genai_client):
    with pytest.raises(errors.ClientError) as refused:
        genai_client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=example_turns(1), ttl="300s"))
    assert refused.value.code == 400 and "Cached content is too small" in refused.value.message
    assert "min_total_token_count=2048" in refused.value.message


def test_generate_reads_the_cache_and_reports_its_tokens_until_it_expires(genai_client, emu):
    made = genai_client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(
        contents=example_turns(3), system_instruction="Detect objects as JSON.", ttl="300s"))
    sc = make_scene(320, 240, 2, seed=99)
    task = [types.Part.from_bytes(data=encode_image(sc.image, "png"), mime_type="image/png"),
            types.Part.from_text(text="Detect every object.")]
    reply = genai_client.models.generate_content(model=MODEL, contents=task,
                                                 config=types.GenerateContentConfig(cached_content=made.name))
    usage = reply.usage_metadata
    assert usage.cached_content_token_count == made.usage_metadata.total_token_count
    assert usage.prompt_token_count > usage.cached_content_token_count  # includes them, as Gemini counts
    # a system instruction beside a cache is refused, as is another model
    with pytest.raises(errors.ClientError) as both:
        genai_client.models.generate_content(model=MODEL, contents=task, config=types.GenerateContentConfig(
            cached_content=made.name, system_instruction="again"))
    assert both.value.code == 400 and "system_instruction" in both.value.message
    with pytest.raises(errors.ClientError) as other:
        genai_client.models.generate_content(model="gemini-2.5-pro", contents=task,
                                             config=types.GenerateContentConfig(cached_content=made.name))
    assert other.value.code == 400 and "has to be the same" in other.value.message
    # another API key cannot read it
    emu.add_api_key("second-key")
    stranger = genai.Client(api_key="second-key", http_options=types.HttpOptions(base_url=emu.url, api_version="v1beta"))
    with pytest.raises(errors.ClientError) as denied:
        stranger.caches.get(name=made.name)
    assert denied.value.code == 403
    # expired: gone for get, and a request naming it is refused (the backend then goes inline)
    assert emu.caches.expire() == 1
    with pytest.raises(errors.ClientError) as expired:
        genai_client.models.generate_content(model=MODEL, contents=task, config=types.GenerateContentConfig(cached_content=made.name))
    assert expired.value.code == 403 and "CachedContent not found" in expired.value.message
    assert list(genai_client.caches.list()) == []
