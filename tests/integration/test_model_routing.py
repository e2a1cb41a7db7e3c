"""Issue 17 part 1 "Done when", through HTTP, the real SDK and the emulator answering as each model
family does: with GEMINI_MODEL set to a 3.x model, RectangleLabels + BrushLabels + PolygonLabels get
every region type at today's IoU bars (rect >= 0.9, brush >= 0.85, polygon >= 0.8), whether the masks
come from the 2.5 mask model (PNG maps) or from a 3.x / Robotics-ER 1.6 model (polygon masks)."""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import encode_image, make_scene
from tests.helpers import brush_control, brush_ious, config, data_uri, polygon_control, polygon_ious, rect_control, rect_ious

MAX = 'model_max_objects="40"'
SPATIAL = config(rect_control(extra=MAX), brush_control(extra=MAX), polygon_control(extra=MAX))


def _predict(backend, scene, label_config, fmt="png"):
    task = {"id": 1, "data": {"image": data_uri(encode_image(scene.image, fmt), f"image/{fmt}")}}
    resp = backend.post("/predict", {"tasks": [task], "label_config": label_config, "params": {"context": None}})
    assert resp.status_code == 200, resp.text
    (entry,) = resp.json()["results"]
    assert "result" in entry, entry
    return entry


def _check(result, scene):
    assert not LabelInterface(SPATIAL).validate_prediction({"result": result}, return_errors=True)
    kinds = {r["type"] for r in result}
    assert kinds == {"rectanglelabels", "brushlabels", "polygonlabels"}
    assert min(rect_ious(result, scene)) >= 0.9
    assert min(brush_ious(result, scene)) >= 0.85
    assert min(polygon_ious(result, scene)) >= 0.8


@pytest.mark.parametrize(
    ("model", "mask_model", "asked"),
    [
        ("gemini-3.6-flash", None, "gemini-2.5-flash-lite"),  # default routing: PNG maps from 2.5
        ("gemini-3.6-flash", "gemini-3.6-flash", "gemini-3.6-flash"),  # 3.x all the way: polygons
        ("gemini-3.8-flash", "gemini-robotics-er-1.6-preview", "gemini-robotics-er-1.6-preview"),
    ],
)
@pytest.mark.parametrize(("w", "h", "n"), [(640, 480, 5), (1600, 1200, 30), (8000, 6000, 12)])
def test_3x_model_gets_every_region_type(backend_factory, emu, model, mask_model, asked, w, h, n):
    backend = backend_factory(GEMINI_MODEL=model, GEMINI_MASK_MODEL=mask_model)
    scene = make_scene(w, h, n, seed=w + n, background="noisy" if n != 30 else "plain")
    entry = _predict(backend, scene, SPATIAL, "png" if w < 4000 else "jpeg")
    _check(entry["result"], scene)
    # one segmentation request, sent to the mask model (rect+brush+polygon share it)
    models = emu.counters()["models"]
    assert set(models) == {asked} and models[asked]["requests"] == 1
    assert backend.metric("gemini_ls_masks_dropped_total") == 0


def test_boxes_go_to_gemini_model_and_masks_to_the_mask_model(backend_factory, emu):
    backend = backend_factory(GEMINI_MODEL="gemini-3.8-flash", GEMINI_MASK_MODEL="gemini-2.5-flash-lite")
    scene = make_scene(800, 600, 4, seed=3)
    two = config(rect_control(), polygon_control(name="poly", extra='model_prompt="Outline them."'))
    entry = _predict(backend, scene, two)
    assert min(rect_ious(entry["result"], scene)) >= 0.9 and min(polygon_ious(entry["result"], scene)) >= 0.8
    assert {m: c["requests"] for m, c in emu.counters()["models"].items()} == {
        "gemini-3.8-flash": 1, "gemini-2.5-flash-lite": 1,
    }


def test_config_level_override(backend_factory, emu):
    backend = backend_factory(GEMINI_MODEL="gemini-3.6-flash")
    scene = make_scene(640, 480, 3, seed=5)
    cfg = config(
        rect_control(extra='model_name="gemini-3.8-flash"'),
        brush_control(extra='model_mask_name="gemini-robotics-er-1.6-preview"'),
    )
    entry = _predict(backend, scene, cfg)
    assert min(rect_ious(entry["result"], scene)) >= 0.9 and min(brush_ious(entry["result"], scene)) >= 0.85
    assert set(emu.counters()["models"]) == {"gemini-3.8-flash", "gemini-robotics-er-1.6-preview"}


def test_deprecated_name_keeps_working_and_health_says_so(backend_factory, emu):
    backend = backend_factory(GEMINI_MODEL="gemini-3.5-flash", GEMINI_MASK_MODEL="gemini-3.5-flash")
    scene = make_scene(640, 480, 4, seed=8)
    entry = _predict(backend, scene, SPATIAL)
    _check(entry["result"], scene)
    assert set(emu.counters()["models"]) == {"gemini-3.6-flash"}  # we call the successor
    health = backend.get("/health").json()["gemini"]
    assert health["model"] == "gemini-3.6-flash"
    routing = health["routing"]
    assert routing["configured"]["GEMINI_MODEL"] == "gemini-3.5-flash"
    assert "gemini-3.5-flash is deprecated; routed to gemini-3.6-flash" in routing["deprecations"]
    assert routing["by_kind"]["masks"] == "gemini-3.6-flash" and routing["mask_format"]["mask_model"] == "polygon"
    version = backend.post("/setup", {"schema": SPATIAL}).json()["model_version"]
    assert version.startswith("gemini-ls-gemini-3.6-flash-") and "masks" not in version


def test_model_version_names_both_models(backend_factory):
    backend = backend_factory(GEMINI_MODEL="gemini-3.8-flash", GEMINI_MASK_MODEL="gemini-2.5-flash-lite")
    version = backend.post("/setup", {"schema": SPATIAL}).json()["model_version"]
    assert version.startswith("gemini-ls-gemini-3.8-flash-masks-gemini-2.5-flash-lite-")
