"""Issue 23 item 5 through the HTTP server against the emulator (real SDK over HTTP): labels from
the task (`value="$field"`), with reference pictures (the inventory template's `html`) and as
phrases to ground (the visual-genome template), and item 9's bad inputs, each costing its own task."""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import box_iou, encode_image, make_scene
from tests.helpers import config, data_uri, rect_pixels

INVENTORY = config('<PolygonLabels name="objects" toName="image" value="$objects"/>')
GENOME = config('<RectangleLabels name="regions" toName="image" value="$regions"/>'
                '<RectangleLabels name="relationships" toName="image" value="$relationships"/>')
# the shelf: one object per product, plus two the task names no product for
SHELF = ["red circle", "blue square", "green triangle", "orange rectangle", "purple circle"]
PRODUCTS = {"Cola": "red circle", "Energy": "blue square", "Lime": "green triangle"}


def _png(scene) -> str:
    return data_uri(encode_image(scene.image, "png"), "image/png")


def product_picture(name: str, seed: int = 0) -> str:
    """A product's picture: the object alone, at another size than on the shelf."""
    return _png(make_scene(160, 160, names=[name], seed=seed))


def objects_field(pictures: dict[str, str]) -> list[dict]:
    return [{"value": label, "html": f"<img width='100' src='{src}'/>"} for label, src in pictures.items()]


def _predict(backend, tasks, label_config):
    resp = backend.post("/predict", {"tasks": tasks, "label_config": label_config, "params": {"context": None}})
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def _box(region, scene) -> tuple[float, float, float, float]:
    if region["type"] == "rectanglelabels":
        return rect_pixels(region)
    xs = [p[0] / 100 * scene.width for p in region["value"]["points"]]
    ys = [p[1] / 100 * scene.height for p in region["value"]["points"]]
    return (min(xs), min(ys), max(xs), max(ys))


def _labelled(result, scene, key: str) -> dict[str, list]:
    """label -> the scene objects its regions fall on (best box IoU >= 0.8)."""
    out: dict[str, list] = {}
    for region in result:
        (label,) = region["value"][key]
        box = _box(region, scene)
        obj = max(scene.objects, key=lambda o: box_iou(box, o.box))
        assert box_iou(box, obj.box) >= 0.8, (label, box, obj.box)
        out.setdefault(label, []).append(obj.name)
    return out


def test_reference_pictures_find_their_products_and_are_uploaded_once(backend_server, emu):
    scenes = [make_scene(640, 480, names=SHELF, seed=s, background="noisy") for s in (5, 6)]
    pictures = {label: product_picture(name, seed=i) for i, (label, name) in enumerate(PRODUCTS.items())}
    tasks = [{"id": i + 1, "data": {"image": _png(scene), "objects": objects_field(pictures)}}
             for i, scene in enumerate(scenes)]
    before = emu.counters()["uploads"]
    results = _predict(backend_server, tasks, INVENTORY)
    interface = LabelInterface(INVENTORY)
    for entry, scene in zip(results, scenes, strict=True):
        assert not interface.validate_prediction({"result": entry["result"]}, return_errors=True)
        assert _labelled(entry["result"], scene, "polygonlabels") == {k: [v] for k, v in PRODUCTS.items()}
    # three pictures, two tasks: each picture uploaded once, the second task reuses the uploads
    # (the shelves themselves are used once and go inline)
    assert emu.counters()["uploads"] - before == len(PRODUCTS)
    assert backend_server.metric("gemini_ls_gemini_requests_total", kind="masks", outcome="ok") == 2


def test_the_label_set_does_not_change_model_version(backend_server):
    scene = make_scene(320, 240, names=SHELF[:2], seed=1)
    one = _predict(backend_server, [{"id": 1, "data": {"image": _png(scene), "objects": [{"value": "Cola"}]}}], INVENTORY)
    two = _predict(backend_server, [{"id": 2, "data": {"image": _png(scene), "objects": [{"value": "red circle"},
                                                                                          {"value": "blue square"}]}}], INVENTORY)
    assert one[0]["model_version"] == two[0]["model_version"]
    assert sorted(r["value"]["polygonlabels"][0] for r in two[0]["result"]) == ["blue square", "red circle"]
    assert one[0]["result"] == []  # "Cola" without a picture names no colour or shape the emulator sees


def test_phrases_are_grounded_one_region_each(backend_server):
    scene = make_scene(640, 480, names=["red circle", "red circle", "blue square", "green triangle", "red square"],
                       seed=11, background="noisy")
    blue = scene.matching("blue", "square")[0]
    reds = scene.matching("red", "circle")
    left = min(reds, key=lambda o: o.centre[0])
    phrases = {
        "the red circle left of the red circle": left,
        "a green triangle in the picture": scene.matching("green", "triangle")[0],
        "the big blue square": blue,
        "the yellow circle on the left": None,  # nothing yellow: no region
    }
    data = {"image": _png(scene), "regions": [{"value": p} for p in phrases],
            "relationships": [{"value": "red square near blue square"}]}
    (entry,) = _predict(backend_server, [{"id": 1, "data": data}], GENOME)
    assert not LabelInterface(GENOME).validate_prediction({"result": entry["result"]}, return_errors=True)
    got: dict[str, list] = {}
    for region in entry["result"]:
        (label,) = region["value"]["rectanglelabels"]
        got.setdefault(label, []).append((region["from_name"], rect_pixels(region)))
    assert set(got) == {p for p, o in phrases.items() if o is not None} | {"red square near blue square"}
    for phrase, obj in phrases.items():
        if obj is not None:
            ((control, box),) = got[phrase]  # one region per phrase
            assert control == "regions" and box_iou(box, obj.box) >= 0.9, phrase
    ((control, box),) = got["red square near blue square"]
    assert control == "relationships" and box_iou(box, scene.matching("red", "square")[0].box) >= 0.9


@pytest.mark.parametrize(("objects", "error"), [
    (None, "has no data['objects']"),
    ("CocaCola", "is str, not a list"),
    ([{"value": f"label {i}"} for i in range(10_000)], "holds 10,000 labels, above MAX_DYNAMIC_LABELS=200"),
])
def test_a_bad_labels_field_fails_its_own_task_only(backend_server, objects, error):
    scene = make_scene(320, 240, names=["red circle"], seed=2)
    bad = {"image": _png(scene)} | ({} if objects is None else {"objects": objects})
    good = {"image": _png(scene), "objects": [{"value": "red circle"}]}
    results = _predict(backend_server, [{"id": 1, "data": bad}, {"id": 2, "data": good}], INVENTORY)
    assert "result" not in results[0] and error in results[0]["error"], results[0]
    assert [r["value"]["polygonlabels"] for r in results[1]["result"]] == [["red circle"]]


def test_an_empty_labels_list_is_an_empty_result(backend_server):
    scene = make_scene(320, 240, names=["red circle"], seed=2)
    before = backend_server.metric("gemini_ls_gemini_requests_total", kind="masks", outcome="ok")
    (entry,) = _predict(backend_server, [{"id": 1, "data": {"image": _png(scene), "objects": [{"html": "no value"}]}}],
                        INVENTORY)
    assert entry["result"] == []
    assert backend_server.metric("gemini_ls_gemini_requests_total", kind="masks", outcome="ok") == before  # nothing asked


def _asked_by_name(backend, pictures: dict[str, str], seed: int) -> None:
    scene = make_scene(640, 480, names=list(pictures), seed=seed)
    (entry,) = _predict(backend, [{"id": 1, "data": {"image": _png(scene), "objects": objects_field(pictures)}}], INVENTORY)
    assert "result" in entry, entry
    assert {label: objs for label, objs in _labelled(entry["result"], scene, "polygonlabels").items()} == {
        name: [name] for name in pictures}


def test_unusable_pictures_leave_their_labels_asked_by_name(backend_factory, image_server, emu):
    """404, too large, not an image, the cloud metadata address: each label is still asked for, by its name."""
    backend = backend_factory(IMAGE_MAX_DOWNLOAD_BYTES="200000")
    big = encode_image(make_scene(1200, 1200, 40, seed=4, background="noisy").image, "png")
    assert len(big) > 200_000
    _asked_by_name(backend, {
        "red circle": image_server.url("/products/gone.png"),  # 404
        "blue square": "http://169.254.169.254/latest/meta-data/",  # refused by the SSRF guard
        "green triangle": data_uri(big, "image/png"),  # above IMAGE_MAX_DOWNLOAD_BYTES
        "orange rectangle": data_uri(b"not an image", "image/png"),
    }, seed=3)
    assert image_server.hits("/products/gone.png") == 1
    assert emu.counters()["uploads"] == 0  # no picture was had, none uploaded
    assert backend.metric("gemini_ls_image_fetch_errors_total", reason="blocked_address") >= 1


def test_a_picture_on_a_private_address_is_refused(backend_factory, emu):
    backend = backend_factory(FETCH_ALLOWLIST=None)  # the default: loopback and private ranges blocked
    _asked_by_name(backend, {"red circle": "http://127.0.0.1:6379/", "blue square": "http://10.0.0.1/cola.png"}, seed=8)
    assert backend.metric("gemini_ls_image_fetch_errors_total", reason="blocked_address") == 2


INTERACTIVE = ('<View><Image name="image" value="$image"/>'
               '<KeyPointLabels name="kp" toName="image" smart="true" value="$objects"/>'
               '<PolygonLabels name="poly" toName="image" value="$objects"/></View>')


def test_a_click_with_a_label_from_the_task(backend_server):
    scene = make_scene(640, 480, names=["red circle", "red circle", "blue square"], seed=21)
    target = scene.matching("red", "circle")[0]
    x, y = target.centre
    click = {"type": "keypointlabels", "from_name": "kp", "to_name": "image", "original_width": scene.width,
             "original_height": scene.height, "is_positive": True,
             "value": {"x": x / scene.width * 100, "y": y / scene.height * 100, "width": 0.5, "keypointlabels": ["Cola"]}}
    data = {"image": _png(scene), "objects": [{"value": "Cola"}, {"value": "Energy"}]}
    resp = backend_server.post("/predict", {"tasks": [{"id": 1, "data": data}], "label_config": INTERACTIVE,
                                            "params": {"context": {"result": [click]}}})
    assert resp.status_code == 200, resp.text
    (entry,) = resp.json()["results"]
    (region,) = entry["result"]
    assert region["from_name"] == "poly" and region["value"]["polygonlabels"] == ["Cola"]
    assert box_iou(_box(region, scene), target.box) >= 0.8
    bad = {"image": data["image"], "objects": "Cola"}
    resp = backend_server.post("/predict", {"tasks": [{"id": 2, "data": bad}], "label_config": INTERACTIVE,
                                            "params": {"context": {"result": [click]}}})
    assert resp.status_code == 422 and "is str, not a list" in resp.text, resp.text  # the interactive contract
