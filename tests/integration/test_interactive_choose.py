"""Issue 24 item 6 through our HTTP server, the real SDK and the emulator: the emulator answers
every click or box prompt with ALL objects of the label (fault "interactive_all", largest first),
and each interaction still gets exactly the annotator's object (interactive/choose.py)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY
from tests.helpers import brush_mask, data_uri, polygon_mask
from tests.integration.test_interactive import _box, _click, _interact, _iou, _one_object, _regions

SCENE = make_scene(1200, 900, names=["red circle", "red square", "blue square", "green triangle"], seed=24)
TASK = {"id": 6, "data": {"image": data_uri(encode_image(SCENE.image, "jpeg"), "image/jpeg")}}
RED = SCENE.matching("red", "circle") + SCENE.matching("red", "square")
SMALL, LARGE = sorted(RED, key=lambda o: o.area)


def _answered_entries(emu, body: dict) -> int:
    """How many entries the emulator answers the backend's recorded request with, under the fault."""
    model = "gemini-2.5-flash"
    req = urllib.request.Request(f"{emu.url}/v1beta/models/{model}:generateContent", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", "x-goog-api-key": DEFAULT_API_KEY,
                                          "x-emulator-fault": "interactive_all"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = json.load(resp)["candidates"][0]["content"]["parts"][0]["text"]
    return len(json.loads(text))


@pytest.fixture
def every(emu):
    emu.add_fault("interactive_all", rate=1.0)
    emu.record(10)
    return emu


@pytest.mark.parametrize("prompt", ["click", "box"])
@pytest.mark.parametrize("which", ["small", "large"])
def test_each_interaction_gets_its_own_object(backend_server, every, prompt, which):
    target, other = (SMALL, LARGE) if which == "small" else (LARGE, SMALL)
    drawn = _click(target) if prompt == "click" else _box(target)
    result = _regions(_interact(backend_server, {"result": [drawn]}, task=TASK))
    brush = _one_object(result, target, "Red")  # one brush + one polygon, IoU >= 0.8 with the target
    assert _iou(brush_mask(brush), other) == 0.0
    polygon = next(r for r in result if r["type"] == "polygonlabels")
    assert _iou(polygon_mask(polygon), other) == 0.0
    counters = every.counters()
    assert counters["requests"].get("generateContent") == 1
    assert counters["faults"].get("interactive_all") == 1
    if prompt == "click":  # the model really answered both red objects, the larger first
        assert _answered_entries(every, every.recorded[-1]) == 2


def test_negative_click_on_the_other_object(backend_server, every):
    clicks = [_click(LARGE), _click(SMALL, positive=False)]
    _one_object(_regions(_interact(backend_server, {"result": clicks}, task=TASK)), LARGE, "Red")


def test_click_on_the_background_is_nothing_not_the_first_entry(backend_server, every):
    click = {"type": "keypointlabels", "from_name": "kp", "to_name": "image", "is_positive": True,
             "value": {"x": 0.3, "y": 0.3, "keypointlabels": ["Red"]}}
    assert _regions(_interact(backend_server, {"result": [click]}, task=TASK)) == []
