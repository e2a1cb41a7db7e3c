"""Issue #24, tiling: the real SDK over HTTP to the emulator, through our /predict, on a 12 MP photo
of 24 small objects (20-40 px) and 4 large ones lying across tile borders. The emulator looks at each
image at its media-resolution budget, so whole it misses the small objects; TILING=auto finds them
and keeps each large object one region. Tiles go through the Files API cache; the media resolution
reaches the wire per image part (Gemini 3); choices are asked once; model_version names the setting.
"""

from __future__ import annotations

import pytest

from gemini_ls.emulator.scenes import encode_image
from gemini_ls.emulator.tilescenes import make_small_objects_scene
from tests.helpers import config, data_uri, polygon_control, rect_control, tiling_score

SLOW = {"PREDICT_TIMEOUT": "240", "GEMINI_TIMEOUT": "120"}  # 12 MP decodes and 4 tiles on a shared 2-core machine
RECTS = config(rect_control(extra='model_max_objects="60"'))
MODEL = "gemini-3.6-flash"


@pytest.fixture(scope="module")
def photo():
    scene = make_small_objects_scene(4000, 3000, 24, seed=7)
    return scene, data_uri(encode_image(scene.image, "jpeg", quality=92), "image/jpeg")


def _predict(backend, tasks, label_config=RECTS):
    resp = backend.post("/predict", {"tasks": tasks, "label_config": label_config, "project": "1.1", "params": {"context": None}},
                        timeout=300)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert all("result" in r for r in results), results  # none late or failed, even on a loaded machine
    return results


def _tiles_of(emu) -> list[dict]:
    return [body for body in emu.recorded if "contents" in body]


def _image_parts(body: dict) -> list[dict]:
    return [p for c in body["contents"] for p in c["parts"] if "inlineData" in p or "fileData" in p]


def test_small_objects_recall_with_auto_and_off(backend_factory, emu, photo):
    scene, uri = photo
    off = backend_factory(GEMINI_MODEL=MODEL, TILING="off", **SLOW)
    (whole,) = _predict(off, [{"id": 1, "data": {"image": uri}}])
    auto = backend_factory(GEMINI_MODEL=MODEL, TILING="auto", **SLOW)
    emu.record(50)
    (tiled,) = _predict(auto, [{"id": 1, "data": {"image": uri}}])
    before, after = tiling_score(whole["result"], scene), tiling_score(tiled["result"], scene)
    assert after.small_found / after.small_total >= 0.9, after
    assert before.small_found / before.small_total <= 0.4, before
    assert after.large_exact == after.large_total == 4 and after.large_worst_iou >= 0.9, after
    assert after.invented == 0 and before.invented == 0
    assert len(_tiles_of(emu)) == 4  # 4000x3000 at HIGH: a 2x2 grid
    assert whole["model_version"] != tiled["model_version"]


def test_polygons_of_objects_cut_by_tile_borders_come_back_whole(backend_factory, emu, photo):
    scene, uri = photo
    backend = backend_factory(GEMINI_MASK_MODEL=MODEL, GEMINI_MODEL=MODEL, TILING="2x2", **SLOW)
    cfg = config(polygon_control(extra='model_max_objects="60"'))
    (entry,) = _predict(backend, [{"id": 1, "data": {"image": uri}}], cfg)
    large = [r for r in entry["result"] if r["value"]["polygonlabels"] == ["Blue"]]
    assert len(large) == 4
    for region in large:
        xs = [x / 100 * scene.width for x, _ in region["value"]["points"]]
        ys = [y / 100 * scene.height for _, y in region["value"]["points"]]
        box = (min(xs), min(ys), max(xs), max(ys))
        truth = max((o for o in scene.objects if o.colour == "blue"),
                    key=lambda o: min(box[2], o.box[2]) - max(box[0], o.box[0]) + min(box[3], o.box[3]) - max(box[1], o.box[1]))
        assert abs(box[0] - truth.box[0]) < 8 and abs(box[2] - truth.box[2]) < 8, (box, truth.box)
        assert abs(box[1] - truth.box[1]) < 8 and abs(box[3] - truth.box[3]) < 8, (box, truth.box)


def test_tiles_are_cached_in_the_files_api_like_whole_images(backend_factory, emu, photo):
    _scene, uri = photo
    backend = backend_factory(GEMINI_MODEL=MODEL, TILING="auto", GEMINI_FILES="always", **SLOW)
    _predict(backend, [{"id": 1, "data": {"image": uri}}])
    assert emu.counters()["uploads"] == 4
    _predict(backend, [{"id": 2, "data": {"image": uri}}])  # the same photo in another task: its tiles are known
    assert emu.counters()["uploads"] == 4


def test_media_resolution_goes_per_part_and_choices_are_asked_once(backend_factory, emu, photo):
    _scene, uri = photo
    backend = backend_factory(GEMINI_MODEL=MODEL, TILING="auto", GEMINI_MEDIA_RESOLUTION="ultra_high", **SLOW)
    choices = ('<Choices name="c" toName="image" model_media_resolution="LOW">'
               '<Choice value="Red"/><Choice value="Blue"/></Choices>')
    emu.record(50)
    (entry,) = _predict(backend, [{"id": 1, "data": {"image": uri}}], config(rect_control(), choices))
    assert "result" in entry
    bodies = _tiles_of(emu)
    levels = sorted(part["mediaResolution"]["level"] for body in bodies for part in _image_parts(body))
    # ULTRA_HIGH (2240 tokens) sees more per image: auto needs fewer tiles than at HIGH; the choice goes whole
    assert levels.count("MEDIA_RESOLUTION_LOW") == 1
    assert levels.count("MEDIA_RESOLUTION_ULTRA_HIGH") == len(bodies) - 1 >= 2
