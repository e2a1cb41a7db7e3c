"""Issue 17 part 2 through our HTTP server, the real SDK and the emulator: the annotator's click,
box or phrase in params.context -> regions of that object (or those objects), one Gemini call each."""

from __future__ import annotations

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import encode_image, make_scene
from tests.helpers import brush_mask, data_uri, interactive_config, label_of, polygon_mask

CONFIG = interactive_config()
SCENE = make_scene(1200, 900, names=["red circle", "red circle", "blue square", "red square", "green triangle"], seed=21)
TASK = {"id": 5, "data": {"image": data_uri(encode_image(SCENE.image, "jpeg"), "image/jpeg")}}
W, H = SCENE.width, SCENE.height
RED_CIRCLES = SCENE.matching("red", "circle")


def _iou(mask: np.ndarray, obj) -> float:
    truth = obj.full_mask(W, H)
    return float(np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum())


def _click(obj, label="Red", positive=True, dx=0.0):
    x, y = obj.centre
    return {"type": "keypointlabels", "from_name": "kp", "to_name": "image", "original_width": W, "original_height": H,
            "is_positive": positive, "value": {"x": (x + dx) / W * 100, "y": y / H * 100, "width": 0.5, "keypointlabels": [label]}}


def _box(obj, label="Red", pad=6):
    x0, y0, x1, y1 = obj.box
    return {"type": "rectanglelabels", "from_name": "box", "to_name": "image", "original_width": W, "original_height": H,
            "value": {"x": (x0 - pad) / W * 100, "y": (y0 - pad) / H * 100, "width": (x1 - x0 + 2 * pad) / W * 100,
                      "height": (y1 - y0 + 2 * pad) / H * 100, "rotation": 0, "rectanglelabels": [label]}}


def _phrase(text):
    return {"type": "textarea", "from_name": "prompt", "to_name": "image", "value": {"text": [text]}}


def _interact(backend, context, task=TASK):
    return backend.post("/predict", {"tasks": [task], "label_config": CONFIG, "params": {"context": context}})


def _regions(resp):
    assert resp.status_code == 200, resp.text
    (entry,) = resp.json()["results"]
    result = entry["result"]
    assert not LabelInterface(CONFIG).validate_prediction({"result": result}, return_errors=True)
    return result


def _one_object(result, obj, label):
    """Exactly one brush and one polygon region, of that object, with that label."""
    brushes = [r for r in result if r["type"] == "brushlabels"]
    polys = [r for r in result if r["type"] == "polygonlabels"]
    assert len(brushes) == 1 and len(polys) == 1 and len(result) == 2, [r["type"] for r in result]
    assert label_of(brushes[0]) == label_of(polys[0]) == label
    assert _iou(brush_mask(brushes[0]), obj) >= 0.8 and _iou(polygon_mask(polys[0]), obj) >= 0.8
    return brushes[0]


@pytest.mark.parametrize("which", [0, 1])
def test_click_on_one_of_two_same_colour_objects(backend_server, emu, which):
    target, other = RED_CIRCLES[which], RED_CIRCLES[1 - which]
    brush = _one_object(_regions(_interact(backend_server, {"result": [_click(target)]})), target, "Red")
    assert _iou(brush_mask(brush), other) == 0.0
    assert emu.counters()["requests"].get("generateContent") == 1  # one Gemini call per interaction


def test_the_annotators_label_is_kept(backend_server):
    # Gemini is told the chosen label; the region carries it even if the object looks otherwise
    (obj,) = SCENE.matching("blue", "square")
    _one_object(_regions(_interact(backend_server, {"result": [_click(obj, label="Yellow")]})), obj, "Yellow")


def test_negative_clicks_refine(backend_server):
    a, b = RED_CIRCLES
    clicks = [_click(a), _click(b), _click(b, positive=False, dx=1)]
    _one_object(_regions(_interact(backend_server, {"result": clicks})), a, "Red")


def test_click_on_background_gives_nothing(backend_server):
    click = {"type": "keypointlabels", "from_name": "kp", "to_name": "image", "is_positive": True,
             "value": {"x": 0.2, "y": 0.2, "keypointlabels": ["Red"]}}
    assert _regions(_interact(backend_server, {"result": [click]})) == []


def test_box_gives_the_object_inside(backend_server, emu):
    (obj,) = SCENE.matching("red", "square")
    result = _regions(_interact(backend_server, {"result": [_box(obj)]}))
    _one_object(result, obj, "Red")  # the drawing control (box) is not an output
    assert emu.counters()["requests"].get("generateContent") == 1


def test_phrase_gives_only_the_matching_objects(backend_server, emu):
    result = _regions(_interact(backend_server, {"result": [_phrase("the red circles")]}))
    brushes = [r for r in result if r["type"] == "brushlabels"]
    assert len(brushes) == 2 and {label_of(r) for r in brushes} == {"Red"}
    masks = [brush_mask(r) for r in brushes]
    for circle in RED_CIRCLES:
        assert max(_iou(m, circle) for m in masks) >= 0.8
    assert len([r for r in result if r["type"] == "polygonlabels"]) == 2
    assert emu.counters()["requests"].get("generateContent") == 1


def test_phrase_matching_nothing_is_empty(backend_server):
    assert _regions(_interact(backend_server, {"result": [_phrase("the purple triangles")]})) == []


def test_empty_context_is_interactive_whole_task(backend_server):
    result = _regions(_interact(backend_server, {}))
    assert {r["type"] for r in result} >= {"brushlabels", "polygonlabels", "rectanglelabels"}
    assert backend_server.metric("gemini_ls_predict_requests_total", mode="interactive") == 1


def test_bad_context_is_a_clear_http_error(backend_server):
    resp = _interact(backend_server, {"result": [{"type": "keypointlabels", "value": {"x": "left", "y": 3}}]})
    assert resp.status_code == 422 and "x must be a number" in resp.json()["error"]
    resp = _interact(backend_server, {"result": [_click(RED_CIRCLES[0], label="Zebra")]})
    assert resp.status_code == 422 and "'Zebra'" in resp.json()["error"]


def test_3x_polygon_masks_work_interactively(backend_factory):
    backend = backend_factory(GEMINI_MODEL="gemini-3.8-flash", GEMINI_MASK_MODEL="gemini-3.6-flash")
    target = RED_CIRCLES[0]
    _one_object(_regions(_interact(backend, {"result": [_click(target)]})), target, "Red")
    (obj,) = SCENE.matching("red", "square")
    _one_object(_regions(_interact(backend, {"result": [_box(obj)]})), obj, "Red")
