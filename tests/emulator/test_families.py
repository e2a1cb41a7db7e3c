"""The emulator answers as each model family does (emulator/families.py), through the real SDK:
mask formats, the 400s for thinking configs a family refuses, deprecated names, token costs. And the
backend's own generation config for every model of its table is one the family accepts."""

from __future__ import annotations

import json
import time

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from gemini_ls.detections import RequestKind
from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.gemini.client import make_client
from gemini_ls.gemini.labels import LabelMatcher
from gemini_ls.gemini.models import MODELS, MaskFormat, lookup
from gemini_ls.gemini.parse import parse_detections
from gemini_ls.gemini.prompts import detection_prompt, segmentation_prompt
from gemini_ls.gemini.request import GeminiCaller
from gemini_ls.labelconfig import LabelSpec
from gemini_ls.metrics import Metrics
from gemini_ls.settings import Settings

SCENE = make_scene(640, 480, names=["red circle", "blue square", "green triangle"], seed=11)
IMAGE = encode_image(SCENE.image, "png")
LABELS = (LabelSpec("Red", "red objects"), LabelSpec("Blue", "blue objects"), LabelSpec("Green", "green objects"))
SEGMENT = segmentation_prompt(LABELS, 25)


def _ask(client, model, prompt=SEGMENT, **config):
    return client.models.generate_content(
        model=model,
        contents=[types.Part.from_bytes(data=IMAGE, mime_type="image/png"), prompt.user],
        config=types.GenerateContentConfig(response_mime_type="application/json", **config),
    )


def _masks(response) -> list:
    return [item.get("mask") for item in json.loads(response.text)]


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        ("gemini-2.5-flash", "png"),
        ("gemini-2.5-flash-lite", "png"),
        ("gemini-robotics-er-1.5-preview", "png"),
        ("gemini-3.6-flash", "polygon"),
        ("gemini-3.8-flash", "polygon"),
        ("gemini-3.1-pro-preview", "polygon"),
        ("gemini-robotics-er-1.6-preview", "polygon"),
        ("gemini-2.0-flash", None),
    ],
)
def test_mask_format_per_family(genai_client, model, shape):
    masks = _masks(_ask(genai_client, model))
    assert len(masks) == 3
    for mask in masks:
        if shape == "png":
            assert mask.startswith("data:image/png;base64,")
        elif shape == "polygon":
            assert isinstance(mask, list) and len(mask) >= 3
            assert all(len(p) == 2 and all(isinstance(v, int) and 0 <= v <= 1000 for v in p) for p in mask)
        else:
            assert mask is None  # 2.0 does not segment


def test_polygon_masks_parse_to_the_objects(genai_client):
    answer = parse_detections(_ask(genai_client, "gemini-3.6-flash").text, matcher=LabelMatcher(LABELS), want_masks=True)
    assert len(answer.detections) == 3 and not answer.dropped
    for det in answer.detections:
        (obj,) = [o for o in SCENE.objects if o.colour.capitalize() == det.label]
        xs = [x / 1000 * SCENE.width for ring in det.polygon.rings for x, _ in ring]
        ys = [y / 1000 * SCENE.height for ring in det.polygon.rings for _, y in ring]
        assert abs(min(xs) - obj.box[0]) <= 2 and abs(max(xs) - obj.box[2]) <= 2
        assert abs(min(ys) - obj.box[1]) <= 2 and abs(max(ys) - obj.box[3]) <= 2


def test_seg_tokens_on_demand(genai_client, emu):
    emu.add_fault("mask_tokens")
    assert all(m.startswith("<start_of_mask><seg_") for m in _masks(_ask(genai_client, "gemini-2.5-flash")))


THINKING_400 = [
    ("gemini-2.5-pro", {"thinking_budget": 0}, "Budget 0 is invalid. This model only works in thinking mode."),
    ("gemini-2.5-flash", {"thinking_level": "MINIMAL"}, "Thinking level is not supported for this model."),
    ("gemini-3.6-flash", {"thinking_level": "MINIMAL", "thinking_budget": 0}, "only set one of thinking budget and thinking level"),
    ("gemini-3.6-flash", {"thinking_budget": 0}, "Budget 0 is invalid"),
    ("gemini-3.1-pro-preview", {"thinking_level": "MINIMAL"}, "Thinking level MINIMAL is not supported for this model."),
    ("gemini-3-pro-preview", {"thinking_level": "MINIMAL"}, "Thinking level MINIMAL is not supported for this model."),
    ("gemini-3.8-flash", {"thinking_level": "MINIMAL"}, "Thinking level MINIMAL is not supported for this model."),
    ("gemini-2.0-flash", {"thinking_budget": 0}, "Thinking is not supported for this model."),
]


@pytest.mark.parametrize(("model", "thinking", "message"), THINKING_400)
def test_refused_thinking_configs_are_400(genai_client, model, thinking, message):
    with pytest.raises(genai_errors.ClientError) as info:
        _ask(genai_client, model, detection_prompt(LABELS, 25), thinking_config=types.ThinkingConfig(**thinking))
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert message in info.value.message


@pytest.mark.parametrize(
    ("model", "thinking"),
    [("gemini-2.5-pro", {"thinking_budget": 128}), ("gemini-3.1-pro-preview", {"thinking_level": "LOW"}),
     ("gemini-3.6-flash", {"thinking_level": "MINIMAL"}), ("gemini-2.5-flash", {"thinking_budget": 0})],
)
def test_accepted_thinking_configs(genai_client, model, thinking):
    response = _ask(genai_client, model, detection_prompt(LABELS, 25), thinking_config=types.ThinkingConfig(**thinking))
    assert len(json.loads(response.text)) == 3


@pytest.mark.parametrize("name", sorted(MODELS))
def test_backend_generation_config_is_accepted_by_every_family(emu, name):
    """Routing tested against the behaviour: the thinking config the backend sends for each model
    of its table is one that model's family accepts, and the mask format it expects is the one it gets."""
    settings = Settings(api_key="emulator-key", base_url=emu.url, model=name, max_retries=0, request_timeout=10)
    emu.add_api_key("emulator-key")
    caller = GeminiCaller(make_client(settings), settings, Metrics())
    reply = caller.generate(
        SEGMENT, [types.Part.from_bytes(data=IMAGE, mime_type="image/png")], RequestKind.MASKS, deadline=time.monotonic() + 20
    )
    answer = parse_detections(reply.text, matcher=LabelMatcher(LABELS), want_masks=True)
    assert len(answer.detections) == 3
    expected = lookup(reply.model_version or name).masks
    for det in answer.detections:
        assert (det.mask is not None) is (expected is MaskFormat.PNG)
        assert (det.polygon is not None) is (expected is MaskFormat.POLYGON)


def test_deprecated_name_answers_as_its_successor(genai_client):
    assert _ask(genai_client, "gemini-3.5-flash").model_version == "gemini-3.6-flash"


def test_image_tokens_per_family_and_media_resolution(genai_client):
    two = _ask(genai_client, "gemini-2.5-flash", detection_prompt(LABELS, 25))
    three = _ask(genai_client, "gemini-3.6-flash", detection_prompt(LABELS, 25))

    def image_tokens(response):
        return next(d.token_count for d in response.usage_metadata.prompt_tokens_details if d.modality.name == "IMAGE")

    assert image_tokens(two) == 1032  # 640x480: 4 tiles of 258
    assert image_tokens(three) == 1120  # 3.x default for images: HIGH
    low = types.Part.from_bytes(data=IMAGE, mime_type="image/png").model_copy(
        update={"media_resolution": types.PartMediaResolution(level="MEDIA_RESOLUTION_LOW")}
    )
    response = genai_client.models.generate_content(
        model="gemini-3.6-flash",
        contents=[low, detection_prompt(LABELS, 25).user],
        config=types.GenerateContentConfig(response_mime_type="application/json"),
    )
    assert image_tokens(response) == 280
