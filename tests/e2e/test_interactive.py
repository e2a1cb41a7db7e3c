"""Issue 17 "Done when", through the real Label Studio's /api/ml/{id}/interactive-annotating: two
objects of the same colour, a click on one -> exactly one region, that object (IoU >= 0.8), the
annotator's label; a box -> the object inside; a phrase -> only the matching objects. Label Studio
forwards the editor's smart-tool regions to our /predict as params.context and shows our answer."""

from __future__ import annotations

import numpy as np
import pytest

from gemini_ls.emulator.scenes import encode_image, make_scene
from tests.helpers import brush_mask, interactive_config, label_of

from .helpers import backend_env, start_backend_process

pytestmark = pytest.mark.e2e

CONFIG = interactive_config("BrushLabels")
SCENE = make_scene(1024, 768, names=["red circle", "red circle", "blue square", "green triangle", "red square"], seed=33)
W, H = SCENE.width, SCENE.height


@pytest.fixture(scope="module")
def stack(label_studio, gemini_emulator):
    backend = start_backend_process("interactive", backend_env(gemini_emulator.url, label_studio))
    try:
        project = label_studio.create_project("e2e interactive", CONFIG)
        (task_id,) = label_studio.upload_image(project["id"], "two-red-circles.png", encode_image(SCENE.image, "png"))
        ml = label_studio.connect_ml_backend(project["id"], backend.url, title="gemini")
        yield label_studio, ml["id"], task_id
    finally:
        backend.stop()


def _iou(mask: np.ndarray, obj) -> float:
    truth = obj.full_mask(W, H)
    return float(np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum())


def _ask(stack, regions: list[dict]) -> list[dict]:
    ls, ml_id, task_id = stack
    reply = ls.interactive(ml_id, task_id, {"result": regions})
    assert "errors" not in reply, reply
    return reply["data"]["result"]


@pytest.mark.parametrize("which", [0, 1])
def test_click_on_one_of_two_red_circles(stack, which):
    target, other = SCENE.matching("red", "circle")[which], SCENE.matching("red", "circle")[1 - which]
    x, y = target.centre
    click = {"type": "keypointlabels", "from_name": "kp", "to_name": "image", "original_width": W, "original_height": H,
             "is_positive": True, "value": {"x": x / W * 100, "y": y / H * 100, "width": 0.6, "keypointlabels": ["Red"]}}
    (region,) = _ask(stack, [click])  # exactly one region
    assert region["type"] == "brushlabels" and label_of(region) == "Red"
    mask = brush_mask(region)
    assert _iou(mask, target) >= 0.8 and _iou(mask, other) == 0.0


def test_box_gives_the_object_inside(stack):
    (obj,) = SCENE.matching("blue", "square")
    x0, y0, x1, y1 = obj.box
    box = {"type": "rectanglelabels", "from_name": "box", "to_name": "image", "original_width": W, "original_height": H,
           "value": {"x": (x0 - 5) / W * 100, "y": (y0 - 5) / H * 100, "width": (x1 - x0 + 10) / W * 100,
                     "height": (y1 - y0 + 10) / H * 100, "rotation": 0, "rectanglelabels": ["Blue"]}}
    (region,) = _ask(stack, [box])
    assert region["type"] == "brushlabels" and label_of(region) == "Blue" and _iou(brush_mask(region), obj) >= 0.8


def test_phrase_gives_only_the_matching_objects(stack):
    phrase = {"type": "textarea", "from_name": "prompt", "to_name": "image", "value": {"text": ["the red circles"]}}
    result = _ask(stack, [phrase])
    circles = SCENE.matching("red", "circle")
    assert len(result) == 2 and {label_of(r) for r in result} == {"Red"}
    masks = [brush_mask(r) for r in result]
    for circle in circles:
        assert max(_iou(m, circle) for m in masks) >= 0.8
    (square,) = SCENE.matching("red", "square")  # red, but not a circle: left out
    assert all(_iou(m, square) == 0.0 for m in masks)


@pytest.fixture
def every_object(gemini_emulator):
    """Issue 24 item 6: the model answers every click/box prompt with ALL objects of the label."""
    gemini_emulator.add_fault("interactive_all", rate=1.0)
    try:
        yield gemini_emulator
    finally:
        gemini_emulator.clear_faults()


@pytest.mark.parametrize("prompt", ["click", "box"])
@pytest.mark.parametrize("which", [0, 1])
def test_each_interaction_gets_its_own_object_when_the_model_answers_all(stack, every_object, prompt, which):
    circles = SCENE.matching("red", "circle")
    target, other = circles[which], circles[1 - which]
    x0, y0, x1, y1 = target.box
    x, y = target.centre
    drawn = ({"type": "keypointlabels", "from_name": "kp", "to_name": "image", "original_width": W, "original_height": H,
              "is_positive": True, "value": {"x": x / W * 100, "y": y / H * 100, "width": 0.6, "keypointlabels": ["Red"]}}
             if prompt == "click" else
             {"type": "rectanglelabels", "from_name": "box", "to_name": "image", "original_width": W, "original_height": H,
              "value": {"x": (x0 - 5) / W * 100, "y": (y0 - 5) / H * 100, "width": (x1 - x0 + 10) / W * 100,
                        "height": (y1 - y0 + 10) / H * 100, "rotation": 0, "rectanglelabels": ["Red"]}})
    before = every_object.counters()["faults"].get("interactive_all", 0)
    (region,) = _ask(stack, [drawn])  # exactly one region although three red objects were answered
    assert every_object.counters()["faults"].get("interactive_all", 0) == before + 1
    mask = brush_mask(region)
    assert label_of(region) == "Red" and _iou(mask, target) >= 0.8 and _iou(mask, other) == 0.0
