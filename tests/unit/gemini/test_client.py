"""client.py: the configured SDK client and the per-family generation config (pure, no network)."""

from __future__ import annotations

import pytest
from google.genai import types

from gemini_ls.detections import RequestKind
from gemini_ls.gemini.client import (
    API_VERSION,
    OUTPUT_TOKENS,
    THINKING_LEVEL_ALLOWANCE,
    generation_config,
    make_client,
    model_family,
    per_part_media_resolution,
)
from gemini_ls.gemini.errors import GeminiError
from gemini_ls.gemini.prompts import choice_prompt, detection_prompt, segmentation_prompt, text_prompt
from gemini_ls.labelconfig import LabelSpec
from gemini_ls.settings import Settings

KEY = "fake-gemini-key-do-not-leak-0123456789"
LABELS = (LabelSpec("cat"), LabelSpec("dog"))
BOX_PROMPT = detection_prompt(LABELS, 25)


def settings(**kw) -> Settings:
    kw.setdefault("model", "gemini-2.5-flash-lite")  # the 2.x baseline; 3.x cases name their model
    return Settings(api_key=KEY, **kw)


# --------------------------------------------------------------------------- make_client


def test_make_client_pins_v1beta(monkeypatch):
    # Issue 14: the SDK default is v1; env vars must not override what we pin.
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1")
    client = make_client(settings(base_url="http://127.0.0.1:1", request_timeout=12.5), headers={"X-Test": "1"})
    options = client._api_client._http_options
    assert options.api_version == API_VERSION == "v1beta"
    assert options.base_url.rstrip("/") == "http://127.0.0.1:1"
    assert options.timeout == 12500  # milliseconds
    assert options.headers["X-Test"] == "1"
    assert options.retry_options.attempts == 1  # we retry ourselves


@pytest.mark.parametrize("var", ["GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE"])
def test_make_client_ignores_vertex_env(monkeypatch, var):
    monkeypatch.setenv(var, "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "some-project")
    client = make_client(settings())
    assert client._api_client.vertexai is False
    assert "generativelanguage.googleapis.com" in client._api_client._http_options.base_url


def test_make_client_without_key_is_a_clear_error():
    with pytest.raises(GeminiError) as info:
        make_client(Settings(api_key=None))
    assert info.value.reason == "no_api_key" and "API key" in str(info.value)


def test_key_not_in_settings_repr():
    assert KEY not in repr(settings())


# --------------------------------------------------------------------------- model families


@pytest.mark.parametrize(
    ("model", "version", "tier"),
    [
        ("gemini-2.5-flash", (2, 5), "flash"),
        ("models/gemini-2.5-flash-lite", (2, 5), "flash-lite"),
        ("gemini-2.5-pro", (2, 5), "pro"),
        ("gemini-2.0-flash-001", (2, 0), "flash"),
        ("gemini-3-pro-preview", (3, 0), "pro"),
        ("gemini-3-flash-preview", (3, 0), "flash"),
        ("gemini-3.6-flash", (3, 6), "flash"),
        ("gemini-robotics-er-1.5-preview", (2, 5), "robotics"),
        ("gemini-flash-latest", None, "flash"),
    ],
)
def test_model_family(model, version, tier):
    family = model_family(model)
    assert family.version == version and family.tier == tier


def _thinking(model: str) -> types.ThinkingConfig | None:
    return generation_config(settings(model=model), BOX_PROMPT, RequestKind.BOXES).thinking_config


def test_thinking_per_family():
    assert _thinking("gemini-2.5-flash-lite").thinking_budget == 0
    assert _thinking("gemini-2.5-flash-8b-exp").thinking_budget == 0
    assert _thinking("gemini-robotics-er-1.5-preview").thinking_budget == 0
    assert _thinking("gemini-2.5-pro-preview-06-05").thinking_budget == 128  # 2.5 Pro: cannot be disabled
    # retired 2.5 names are served by 3.x models: configured as those (a budget of 0 would be a 400)
    assert _thinking("gemini-2.5-flash").thinking_level == types.ThinkingLevel.MINIMAL
    assert _thinking("gemini-2.5-pro").thinking_level == types.ThinkingLevel.LOW
    assert _thinking("gemini-2.0-flash") is None  # no thinking at all: sending one is an error
    assert _thinking("gemini-flash-latest") is None  # unknown: the model's default
    # Issue 6: 3.x rejects thinking_budget=0; use levels. 3 Pro has no MINIMAL: LOW.
    for model in ("gemini-3-flash-preview", "gemini-3.6-flash", "gemini-3-flash-lite"):
        config = _thinking(model)
        assert config.thinking_level == types.ThinkingLevel.MINIMAL and config.thinking_budget is None
    # 3.x Pro, 3.7 and 3.8 Flash offer no MINIMAL (a 400): LOW, the cheapest they accept.
    for model in ("gemini-3-pro-preview", "gemini-3.1-pro-preview", "gemini-3.7-flash", "gemini-3.8-flash"):
        config = _thinking(model)
        assert config.thinking_level == types.ThinkingLevel.LOW and config.thinking_budget is None
    # A deprecated name is configured with its successor's rules (gemini-3.5-flash -> gemini-3.6-flash).
    assert _thinking("gemini-3.5-flash").thinking_level == types.ThinkingLevel.MINIMAL
    assert _thinking("gemini-robotics-er-1.6-preview").thinking_budget == 0


@pytest.mark.parametrize(
    ("model", "temperature"), [("gemini-2.5-flash-lite", 0.5), ("gemini-2.0-flash", 0.5), ("gemini-3-pro-preview", 1.0)]
)
def test_family_default_temperature(model, temperature):
    assert generation_config(settings(model=model), BOX_PROMPT, RequestKind.BOXES).temperature == temperature


def test_explicit_temperature_wins():
    assert generation_config(settings(temperature=0.0), BOX_PROMPT, RequestKind.BOXES).temperature == 0.0
    assert generation_config(settings(model="gemini-3-flash", temperature=0.2), BOX_PROMPT, RequestKind.BOXES).temperature == 0.2


# --------------------------------------------------------------------------- the rest of the config


def test_box_config():
    config = generation_config(settings(), BOX_PROMPT, RequestKind.BOXES)
    assert config.system_instruction == BOX_PROMPT.system
    assert config.response_mime_type == "application/json"
    assert config.response_schema == BOX_PROMPT.response_schema
    assert config.max_output_tokens == OUTPUT_TOKENS[RequestKind.BOXES]
    (safety,) = config.safety_settings
    assert safety.category == types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT
    assert safety.threshold == types.HarmBlockThreshold.BLOCK_ONLY_HIGH
    assert config.media_resolution is None


def test_masks_get_more_tokens_than_boxes_and_no_schema():
    prompt = segmentation_prompt(LABELS, 25)
    config = generation_config(settings(), prompt, RequestKind.MASKS)
    assert config.max_output_tokens >= 25 * 600 > OUTPUT_TOKENS[RequestKind.BOXES]
    assert config.response_mime_type == "application/json" and config.response_schema is None
    assert config.system_instruction is None


def test_thinking_models_get_thinking_room():
    pro = generation_config(settings(model="gemini-2.5-pro-preview-06-05"), BOX_PROMPT, RequestKind.BOXES)
    three = generation_config(settings(model="gemini-3-flash"), BOX_PROMPT, RequestKind.BOXES)
    assert pro.max_output_tokens == OUTPUT_TOKENS[RequestKind.BOXES] + 128
    assert three.max_output_tokens == OUTPUT_TOKENS[RequestKind.BOXES] + THINKING_LEVEL_ALLOWANCE


def test_text_config_is_plain():
    config = generation_config(settings(), text_prompt(None), RequestKind.TEXT)
    assert config.response_mime_type is None and config.response_schema is None


def test_choice_config_has_schema():
    prompt = choice_prompt(LABELS, multiple=False)
    config = generation_config(settings(), prompt, RequestKind.CHOICE)
    assert config.response_schema == {"type": "ARRAY", "items": {"type": "STRING"}}


@pytest.mark.parametrize("level", ["LOW", "MEDIUM", "HIGH"])
def test_media_resolution(level):
    # Issue 2 (cookbook#907): HIGH suggested for parity with AI Studio; configurable.
    config = generation_config(settings(media_resolution=level), BOX_PROMPT, RequestKind.BOXES)
    assert config.media_resolution == types.MediaResolution(f"MEDIA_RESOLUTION_{level}")
    assert per_part_media_resolution(settings(media_resolution=level), "gemini-2.5-flash-lite") is None


@pytest.mark.parametrize("level", ["LOW", "MEDIUM", "HIGH"])
def test_media_resolution_is_per_part_on_3x(level):
    s = settings(media_resolution=level)
    config = generation_config(s, BOX_PROMPT, RequestKind.BOXES, "gemini-3.6-flash")
    assert config.media_resolution is None  # 3.x reads it per image part
    part = per_part_media_resolution(s, "gemini-3.6-flash")
    assert part.level == types.PartMediaResolutionLevel(f"MEDIA_RESOLUTION_{level}")
    assert per_part_media_resolution(settings(), "gemini-3.6-flash") is None  # unset: model default
