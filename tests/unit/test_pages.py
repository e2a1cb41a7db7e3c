"""Multi-page documents (pages.py, pagepredict.py): which pages, one request or one per page, where a
result goes (`item_index`), and a page that cannot be had costing only its own regions. The provider
is a plain value of our own protocol answering by the images it is sent; the real SDK over HTTP is
tests/integration/test_pages.py."""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence

import pytest
from PIL import Image

from gemini_ls.detections import Detection, NormBox, ParsedAnswer, RequestKind
from gemini_ls.gemini.kinds import KINDS, prompt_for
from gemini_ls.images.errors import ImageError
from gemini_ls.images.prepare import PreparedImage
from gemini_ls.labelconfig import LabelConfigError, parse_label_config
from gemini_ls.metrics import Metrics
from gemini_ls.pagepredict import PagePredictor
from gemini_ls.pages import (
    ITEM_TOKENS,
    OUTPUT_ROOM,
    PAGES_TOGETHER_MAX,
    Page,
    PageListError,
    choose_mode,
    control_modes,
    on_page,
    page_name,
    page_plans,
    read_pages,
)
from gemini_ls.plan import PlannedRequest, plan_requests
from gemini_ls.predict import TaskFailure, image_refs
from gemini_ls.provider import CallHealth
from gemini_ls.settings import Settings

CONFIG = """<View>
  <RectangleLabels name="rectangles" toName="pdf"{mode}><Label value="Title"/><Label value="Date"/></RectangleLabels>
  <Choices name="kind" toName="pdf"><Choice value="Contract"/><Choice value="Invoice"/></Choices>
  <Image valueList="$pages" name="pdf"/>
</View>"""


def _spec(mode: str = ""):
    return parse_label_config(CONFIG.format(mode=f' model_pages="{mode}"' if mode else ""))


def _pages(n: int) -> dict[str, list[Page]]:
    return {"pdf": [Page("pdf", i, f"p{i}.png") for i in range(n)]}


def test_the_image_is_a_page_list_read_from_its_value_list():
    (image,) = _spec().images
    assert (image.name, image.value_key, image.value_list) == ("pdf", "pages", True)


def test_pages_are_read_capped_and_an_entry_that_is_no_url_is_a_page_with_a_problem():
    (image,) = _spec().images
    pages = read_pages({"pages": ["a.png", 7, " ", "d.png"]}, image, max_pages=50)
    assert [(p.index, p.ref) for p in pages.pages] == [(0, "a.png"), (1, None), (2, None), (3, "d.png")]
    assert "page 1 is not an image URL (int)" == pages.pages[1].problem and pages.note is None
    many = read_pages({"pages": [f"{i}.png" for i in range(500)]}, image, max_pages=50)
    assert len(many.pages) == 50 and many.total == 500
    assert many.note == "<Image name='pdf'>: 500 pages, only the first 50 predicted (MAX_PAGES=50)"


@pytest.mark.parametrize("data, got", [({"pages": "a.png"}, "a str"), ({}, "missing"), ({"pages": {"0": "a"}}, "a dict")])
def test_a_field_that_is_not_a_list_is_a_clear_task_error(data, got):
    (image,) = _spec().images
    with pytest.raises(PageListError, match=f"needs data\\['pages'\\] to be a list of page image URLs; it is {got}"):
        read_pages(data, image, 50)


def test_auto_sends_boxes_together_while_the_answer_fits_the_output_room():
    (boxes,) = [p for p in plan_requests(_spec()) if p.kind is RequestKind.BOXES]
    assert choose_mode("auto", boxes, 10) == "together"  # 10 x 25 x 32 = 8000 <= 8192
    assert choose_mode("auto", boxes, 11) == "separate"
    few = PlannedRequest(**{**boxes.__dict__, "max_objects": 5})
    assert choose_mode("auto", few, PAGES_TOGETHER_MAX) == "together"
    assert choose_mode("auto", few, PAGES_TOGETHER_MAX + 1) == "separate"  # too many images for one prompt
    masks = PlannedRequest(**{**boxes.__dict__, "kind": RequestKind.MASKS})
    assert choose_mode("auto", masks, 4) == "separate"  # 4 x 25 masks of ~400 tokens > 32768
    assert choose_mode("together", masks, 4) == "together" and choose_mode("separate", boxes, 2) == "separate"
    tiled = PlannedRequest(**{**boxes.__dict__, "tiling": "2x2"})
    assert choose_mode("together", tiled, 3) == "separate" and choose_mode("together", boxes, 1) == "separate"


def test_the_output_room_is_the_kinds_own():
    assert {k: OUTPUT_ROOM[k] for k in ITEM_TOKENS} == {k: KINDS[k].output_tokens for k in ITEM_TOKENS}


def test_together_is_one_plan_on_every_page_and_separate_one_per_page():
    spec = _spec()
    boxes, kind = plan_requests(spec)
    (together,) = page_plans(boxes, _pages(3), control_modes(spec))
    names = tuple(page_name("pdf", i) for i in range(3))
    assert together.image_names == names and together.controls[0].to_names == names
    assert together.max_objects == 3 * boxes.max_objects
    separate = page_plans(boxes, _pages(3), control_modes(_spec("separate")))
    assert [(p.image_names, p.controls[0].to_names, p.max_objects) for p in separate] == [
        ((n,), (n,), boxes.max_objects) for n in names]
    (whole,) = page_plans(kind, _pages(3), control_modes(spec))  # Choices: the whole document, one prompt
    assert whole.image_names == names and whole.controls[0].to_names == names


def test_a_model_pages_value_that_is_no_mode_is_a_config_error():
    with pytest.raises(LabelConfigError, match="rectangles: model_pages='sometimes': one of auto, together, separate"):
        control_modes(_spec("sometimes"))


def test_a_region_goes_on_its_page_and_a_document_answer_on_the_image():
    pages = {p.name: p for p in _pages(3)["pdf"]}
    region = {"id": "a", "to_name": page_name("pdf", 2), "value": {}}
    assert on_page(region, pages, region=True) == {"id": "a", "to_name": "pdf", "value": {}, "item_index": 2}
    assert on_page(region, pages, region=False) == {"id": "a", "to_name": "pdf", "value": {}}
    assert on_page({"to_name": "other"}, pages, region=True) == {"to_name": "other"}


def test_a_request_with_several_pages_asks_for_each_entrys_page():
    spec = _spec()
    (together,) = page_plans(plan_requests(spec)[0], _pages(3), control_modes(spec))
    prompt = prompt_for(together, 3)
    assert '"image_index": the 0-based position of the image it is on (0 to 2)' in prompt.user
    assert prompt.response_schema is not None and "image_index" in prompt.response_schema["items"]["required"]
    assert "image_index" not in prompt_for(plan_requests(spec)[0], 1).user


# -- the predictor: pages fetched one by one, a bad page costs only its regions -------------------


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (200, 100), colour).save(out, "PNG")
    return out.getvalue()


class PageProvider:
    """One Title box per image sent, on that image (image_index = its position); Contract for Choices."""

    def __init__(self) -> None:
        self.health = CallHealth()
        self.asked: list[tuple[RequestKind, int]] = []

    def answer(self, plan: PlannedRequest, images: Sequence[PreparedImage], *, uses: Mapping[str, int],
               deadline: float) -> ParsedAnswer:
        self.asked.append((plan.kind, len(images)))
        if plan.kind is RequestKind.CHOICE:
            return ParsedAnswer(choices=("Contract",))
        box = NormBox(100, 100, 500, 500)
        return ParsedAnswer(detections=tuple(
            Detection("Title", "Title", box=box, score=0.9, image_index=i) for i in range(len(images))))


def _fetch(ref: str, task_id: object) -> bytes:
    if ref == "missing.png":
        raise ImageError("not_found", "HTTP 404 for missing.png")
    return _png((10, 10 * len(ref), 200))


def _predict(pages: object, mode: str = "", settings: Settings | None = None):
    spec = _spec(mode)
    provider = PageProvider()
    outcome = PagePredictor(settings or Settings(), Metrics(), provider).predict_task(
        {"id": 3, "data": {"pages": pages}}, spec, plan_requests(spec), _fetch, deadline=time.monotonic() + 10)
    return outcome, provider


@pytest.mark.parametrize("mode, asked", [("together", [(RequestKind.BOXES, 3)]), ("separate", [(RequestKind.BOXES, 1)] * 3)])
def test_every_page_gets_its_regions_with_its_item_index(mode, asked):
    outcome, provider = _predict(["a.png", "bb.png", "ccc.png"], mode)
    assert outcome.status == "ok" and outcome.note is None, outcome
    assert provider.asked == [*asked, (RequestKind.CHOICE, 3)]
    boxes = [r for r in outcome.result if r["type"] == "rectanglelabels"]
    assert sorted(r["item_index"] for r in boxes) == [0, 1, 2]
    assert {r["to_name"] for r in outcome.result} == {"pdf"} and len({r["id"] for r in boxes}) == 3
    (choice,) = [r for r in outcome.result if r["type"] == "choices"]
    assert choice["value"]["choices"] == ["Contract"] and "item_index" not in choice


def test_a_page_that_cannot_be_fetched_costs_only_its_own_regions():
    outcome, provider = _predict(["a.png", "missing.png", 5, "dddd.png"], "together")
    assert outcome.status == "ok"
    assert sorted(r["item_index"] for r in outcome.result if r["type"] == "rectanglelabels") == [0, 3]
    assert provider.asked[0] == (RequestKind.BOXES, 2)
    assert outcome.note is not None and "page 1 (image_not_found): image 'pdf#page1': HTTP 404 for missing.png" in outcome.note
    assert "page 2 is not an image URL (int)" in outcome.note


def test_five_hundred_pages_cost_max_pages_and_the_note_says_so():
    outcome, provider = _predict([f"{i}.png" for i in range(500)], settings=Settings(max_pages=12))
    assert outcome.status == "ok"
    assert sorted(r["item_index"] for r in outcome.result if r["type"] == "rectanglelabels") == list(range(12))
    assert sum(n for kind, n in provider.asked if kind is RequestKind.BOXES) == 12  # 12 pages sent, no more
    assert outcome.note == "<Image name='pdf'>: 500 pages, only the first 12 predicted (MAX_PAGES=12)"


@pytest.mark.parametrize("pages, error", [
    ("a.png", "it is a str"),
    ([], "no page of the document could be predicted: it has no pages"),
    (["missing.png"], "no page of the document could be predicted: <Image name='pdf'> page 0 (image_not_found)"),
])
def test_no_usable_page_list_is_a_clear_task_error_and_no_request(pages, error):
    outcome, provider = _predict(pages)
    assert outcome.status == "failed" and error in (outcome.error or ""), outcome
    assert provider.asked == []


def test_a_path_without_pages_says_so_for_its_task():
    """The Batch API and interactive paths read images with predict.image_refs: a page list fails its
    task with a sentence naming the paths that predict it."""
    with pytest.raises(TaskFailure, match="is a multi-page document, predicted by /predict and jobs only"):
        image_refs({"id": 4, "data": {"pages": ["a.png"]}}, _spec(), ["pdf"])
