"""Multi-page documents (`<Image valueList="$pages">`, issue 23 item 4) through the HTTP server against
the emulator (real SDK over HTTP): every region kind per page with its `item_index`, all pages in one
request or one request per page, a page that cannot be fetched costing only its own regions, and the
bad inputs of item 9 (500 pages, a field that is not a list) each costing only their own task."""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import COLOURS, Scene, encode_image, make_scene
from tests.helpers import colour_labels, data_uri
from tests.region_parts import object_of, regions_by_id, shape_of

IMAGE = '<Image valueList="$pages" name="pdf"/>'
DESCRIBE = '<TextArea name="what" toName="pdf" perRegion="true" placeholder="Describe the object"/>'
DOMINANT = ('<Choices name="kind" toName="pdf">'
            + "".join(f'<Choice value="{c.capitalize()}ish" hint="mostly {c}"/>' for c in COLOURS) + "</Choices>")
# region kind -> (controls, the result type of its shape, minimum box IoU)
KINDS = {
    "rectangles": (f'<RectangleLabels name="shape" toName="pdf"{{mode}}>{colour_labels()}</RectangleLabels>', "rectanglelabels", 0.9),
    "polygons": (f'<PolygonLabels name="shape" toName="pdf"{{mode}}>{colour_labels()}</PolygonLabels>', "polygonlabels", 0.8),
    "brush": (f'<BrushLabels name="shape" toName="pdf"{{mode}}>{colour_labels()}</BrushLabels>', "brushlabels", 0.8),
    "keypoints": (f'<KeyPointLabels name="shape" toName="pdf"{{mode}}>{colour_labels()}</KeyPointLabels>', "keypointlabels", 1.0),
    "ellipses": (f'<EllipseLabels name="shape" toName="pdf"{{mode}}>{colour_labels()}</EllipseLabels>', "ellipselabels", 0.9),
    "labels+rectangle": (f'<Labels name="label" toName="pdf">{colour_labels()}</Labels><Rectangle name="shape" toName="pdf"{{mode}}/>',
                         "rectangle", 0.9),
}
NAMES = [["red square", "blue circle"], ["red rectangle", "green triangle", "red circle"], ["red square"]]


def _scenes() -> list[Scene]:
    return [make_scene(480 + 40 * i, 360, names=names, seed=60 + i) for i, names in enumerate(NAMES)]


def _config(kind: str, mode: str = "") -> str:
    controls = KINDS[kind][0].replace("{mode}", f' model_pages="{mode}"' if mode else "")
    return f"<View>{IMAGE}{controls}{DESCRIBE}{DOMINANT}</View>"


def _post(backend, tasks: list[dict], label_config: str) -> list[dict]:
    resp = backend.post("/predict", {"tasks": tasks, "label_config": label_config, "params": {"context": None}})
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def _pages(scenes: list[Scene]) -> list[str]:
    return [data_uri(encode_image(s.image, "png"), "image/png") for s in scenes]


def _calls(backend) -> float:
    return sum(backend.metric("gemini_ls_gemini_requests_total", kind=k, outcome="ok")
               for k in ("boxes", "masks", "points", "choice"))


def _check_page_regions(result: list[dict], scenes: dict[int, Scene], kind: str, label_config: str) -> None:
    """Every region on the page its item_index names, matching an object of that page's scene."""
    assert LabelInterface(label_config).validate_prediction({"result": result}, return_errors=True) == []
    _tags, shape_type, min_iou = KINDS[kind]
    found: dict[int, set] = {i: set() for i in scenes}
    for rid, parts in regions_by_id([r for r in result if r["from_name"] != "kind"]).items():
        shape = shape_of(parts)
        assert shape["type"] == shape_type and shape["to_name"] == "pdf", shape
        page = shape["item_index"]
        assert all(p["item_index"] == page for p in parts.values()), parts  # one region, one page
        obj, iou = object_of(shape, scenes[page])
        assert iou >= min_iou, (rid, page, iou)
        label = (parts["label"] if "label" in parts else shape)["value"]
        assert (label.get("labels") or label[shape_type])[0] == obj.colour.capitalize()
        assert parts["what"]["value"]["text"] == [f"{obj.colour} {obj.shape}"]  # the per-region TextArea
        found[page].add(obj.box)
    if kind != "brush":  # a brush region per object, unless two objects of one colour merge
        assert {i: len(boxes) for i, boxes in found.items()} == {i: len(s.objects) for i, s in scenes.items()}
    else:
        assert all(found.values()), found
    (kind_result,) = [r for r in result if r["from_name"] == "kind"]  # Choices on the whole document
    assert kind_result["value"]["choices"] == ["Redish"] and "item_index" not in kind_result
    assert kind_result["to_name"] == "pdf"


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_region_kind_per_page_with_its_item_index(backend_server, kind):
    scenes = _scenes()
    label_config = _config(kind)
    before = _calls(backend_server)
    (entry,) = _post(backend_server, [{"id": 1, "data": {"pages": _pages(scenes)}}], label_config)
    assert "result" in entry, entry
    _check_page_regions(entry["result"], dict(enumerate(scenes)), kind, label_config)
    # auto: 3 pages x 25 boxes fit one answer; 3 pages of masks, or of points with their per-region
    # text (4,096 output tokens), do not (pages.choose_mode)
    spatial_calls = 3 if kind in ("polygons", "brush", "keypoints") else 1
    assert _calls(backend_server) - before == spatial_calls + 1  # + the document's Choices


@pytest.mark.parametrize("mode, calls", [("together", 1), ("separate", 3)])
def test_one_request_for_all_pages_or_one_per_page_give_the_same_regions(backend_server, mode, calls):
    scenes = _scenes()
    label_config = _config("rectangles", mode)
    before = backend_server.metric("gemini_ls_gemini_requests_total", kind="boxes", outcome="ok")
    (entry,) = _post(backend_server, [{"id": 2, "data": {"pages": _pages(scenes)}}], label_config)
    _check_page_regions(entry["result"], dict(enumerate(scenes)), "rectangles", label_config)
    assert backend_server.metric("gemini_ls_gemini_requests_total", kind="boxes", outcome="ok") - before == calls


def test_a_page_that_cannot_be_fetched_costs_only_its_regions(backend_server):
    """The cloud metadata address is an SSRF target the fetcher refuses: that page gets no regions,
    the others theirs, on their own item_index."""
    scenes = _scenes()
    pages = _pages(scenes)
    pages.insert(1, "http://169.254.169.254/latest/meta-data/page.png")
    label_config = _config("rectangles")
    (entry,) = _post(backend_server, [{"id": 3, "data": {"pages": pages}}], label_config)
    assert "result" in entry, entry
    _check_page_regions(entry["result"], {0: scenes[0], 2: scenes[1], 3: scenes[2]}, "rectangles", label_config)


def test_bad_page_lists_cost_only_their_own_task(backend_factory):
    backend = backend_factory(MAX_PAGES="4")
    scenes = _scenes()
    many = (_pages(scenes) * 170)[:500]  # 500 pages: only the first MAX_PAGES are fetched and sent
    label_config = _config("rectangles")
    before = _calls(backend)
    good, not_a_list, empty = _post(backend, [
        {"id": 10, "data": {"pages": many}}, {"id": 11, "data": {"pages": many[0]}}, {"id": 12, "data": {"pages": []}},
    ], label_config)
    assert _calls(backend) - before == 2  # the 4 pages' boxes in one request, the document's Choices
    pages_seen = {r["item_index"] for r in good["result"] if "item_index" in r}
    assert pages_seen == {0, 1, 2, 3}
    _check_page_regions(good["result"], {i: scenes[i % 3] for i in range(4)}, "rectangles", label_config)
    assert "result" not in not_a_list and "needs data['pages'] to be a list of page image URLs; it is a str" in not_a_list["error"]
    assert "result" not in empty and "no page of the document could be predicted" in empty["error"]


def test_a_model_pages_that_is_no_mode_is_refused_at_setup(backend_server):
    resp = backend_server.post("/setup", {"project": "1.1", "schema": _config("rectangles", "sometimes")})
    assert resp.status_code == 400 and "model_pages='sometimes': one of auto, together, separate" in resp.text


def test_every_page_goes_through_the_files_api_cache(backend_factory):
    """GEMINI_FILES=auto: a page that two requests of the task send (the boxes, the document's Choices)
    is uploaded once and referenced by both; the same document again uploads nothing."""
    backend = backend_factory(GEMINI_FILES="auto")
    scenes = _scenes()
    label_config = _config("rectangles", "separate")
    for task_id in (20, 21):
        (entry,) = _post(backend, [{"id": task_id, "data": {"pages": _pages(scenes)}}], label_config)
        _check_page_regions(entry["result"], dict(enumerate(scenes)), "rectangles", label_config)
    assert backend.metric("gemini_ls_files_uploads_total") == len(scenes)
    assert backend.metric("gemini_ls_files_cache_total", result="hit") >= 3 * len(scenes)
