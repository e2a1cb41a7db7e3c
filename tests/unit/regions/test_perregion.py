"""A region as Label Studio's OCR form writes it: the shape, its <Labels> and its per-region answers
as results sharing one id, valid for LabelInterface; answers parsed from one JSON item and filtered
by whenLabelValue; and read back for few-shot examples."""

from __future__ import annotations

import json

from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.detections import ImageMeta
from gemini_ls.gemini.kinds import KINDS
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.plan import plan_requests
from gemini_ls.regions import answer_from_results, convert_for

IMAGE = ImageMeta("image", 800, 600)
CONFIG = (
    '<View><Image name="image" value="$ocr"/>'
    '<Labels name="label" toName="image"><Label value="Text"/><Label value="Handwriting"/></Labels>'
    '<{tool} name="shape" toName="image"/>'
    '<TextArea name="transcription" toName="image" perRegion="true" displayMode="region-list"/>'
    '<Choices name="legible" toName="image" perRegion="true" whenLabelValue="Handwriting" choice="multiple">'
    '<Choice value="Legible"/><Choice value="Faded"/></Choices>'
    '<Number name="words" toName="image" perRegion="true" min="0" max="50"/>'
    '<Rating name="quality" toName="image" perRegion="true"/>'
    '</View>'
)
ITEMS = [
    {"box_2d": [100, 100, 200, 400], "label": "Text", "confidence": 0.9,
     "attributes": {"transcription": "Hello world", "legible": ["Legible"], "words": 2, "quality": 4}},
    {"box_2d": [500, 100, 600, 300], "label": "Handwriting", "confidence": 0.8,
     # an unknown option is dropped, a number out of range and a fractional rating give nothing
     "attributes": {"transcription": "  Dear John ", "legible": ["Faded", "Smudged"], "words": 99, "quality": 2.5}},
    # a question answered beside the box instead of inside "attributes" is read too
    {"box_2d": [700, 700, 800, 900], "label": "Text", "transcription": "Total"},
]


def _results(tool: str, items: list[dict] = ITEMS, mask: bool = False) -> tuple[list[dict], str]:
    config = CONFIG.format(tool=tool)
    spec = parse_label_config(config)
    (plan,) = plan_requests(spec)
    if mask:  # a segmentation answer: a polygon mask per item
        items = [{**i, "mask": [[b[1], b[0]], [b[3], b[0]], [b[3], b[2]], [b[1], b[2]]]} for i in items for b in [i["box_2d"]]]
    answer = KINDS[plan.kind].parse(json.dumps(items), plan, "STOP", 1)
    (control,) = plan.controls
    return list(convert_for(control, {"image": IMAGE}, answer).results), config


def _by_id(results: list[dict]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for r in results:
        out.setdefault(r["id"], {})[r["from_name"]] = r
    return out


def test_rectangle_regions_share_one_id_with_labels_and_answers():
    results, config = _results("Rectangle")
    assert LabelInterface(config).validate_prediction({"result": results}, return_errors=True) == []
    first, second, third = _by_id(results).values()
    assert set(first) == {"shape", "label", "transcription", "words", "quality"}  # "legible": Handwriting only
    assert first["shape"]["type"] == "rectangle" and "rectanglelabels" not in first["shape"]["value"]
    assert first["label"]["type"] == "labels" and first["label"]["value"]["labels"] == ["Text"]
    geometry = first["shape"]["value"]
    assert first["label"]["value"] == {**geometry, "labels": ["Text"]}
    assert first["transcription"]["value"] == {**geometry, "text": ["Hello world"]}
    assert first["words"]["value"]["number"] == 2 and first["quality"]["value"]["rating"] == 4
    assert first["words"]["type"] == "number" and first["quality"]["type"] == "rating"
    assert first["label"]["score"] == first["shape"]["score"] == 0.9 and "score" not in first["transcription"]
    for part in first.values():
        assert (part["original_width"], part["original_height"], part["to_name"]) == (800, 600, "image")
    assert set(second) == {"shape", "label", "transcription", "legible"}
    assert second["transcription"]["value"]["text"] == ["Dear John"]
    assert second["legible"]["value"]["choices"] == ["Faded"] and second["legible"]["type"] == "choices"
    assert set(third) == {"shape", "label", "transcription"} and third["transcription"]["value"]["text"] == ["Total"]


def test_every_bare_tool_gives_valid_split_regions():
    for tool, kind, mask in (("Polygon", "polygon", True), ("Brush", "brush", True), ("Ellipse", "ellipse", False),
                             ("KeyPoint", "keypoint", False)):
        items = [{**i, "point": [(i["box_2d"][0] + i["box_2d"][2]) / 2, (i["box_2d"][1] + i["box_2d"][3]) / 2]}
                 for i in ITEMS] if tool == "KeyPoint" else ITEMS
        results, config = _results(tool, items, mask)
        assert LabelInterface(config).validate_prediction({"result": results}, return_errors=True) == [], tool
        regions = _by_id(results)
        assert len(regions) == 3, tool
        for parts in regions.values():
            assert parts["shape"]["type"] == kind and parts["label"]["type"] == "labels"
            assert {k: v for k, v in parts["label"]["value"].items() if k != "labels"} == parts["shape"]["value"]


def test_a_labels_result_alone_is_invalid_so_regions_are_validated_whole():
    results, config = _results("Rectangle")
    labels_only = [r for r in results if r["type"] == "labels"][:1]
    assert LabelInterface(config).validate_prediction({"result": labels_only}, return_errors=True)


def test_labelled_regions_read_back_from_their_labels_result():
    results, config = _results("Rectangle")
    spec = parse_label_config(config)
    answer = answer_from_results(results, spec.controls, ("image",))
    assert [d.label for d in answer.detections] == ["Text", "Handwriting", "Text"]
    box = answer.detections[0].box
    assert box is not None and round(box.ymin) == 100 and round(box.xmax) == 400


def test_the_review_loop_compares_a_split_region_as_one_labelled_region():
    from gemini_ls.review.match import regions_of

    results, _ = _results("Rectangle")
    shapes = [r for r in regions_of(results) if r.kind == "rectanglelabels"]
    assert [r.label for r in shapes] == ["Text", "Handwriting", "Text"]
    assert all(r.control == "shape" for r in shapes)
    assert not [r for r in regions_of(results) if r.kind == "labels"]


def test_an_annotation_reads_back_with_its_per_region_answers_for_few_shot_examples():
    from gemini_ls.gemini.fewshot import render_answer

    results, config = _results("Rectangle")
    spec = parse_label_config(config)
    answer = answer_from_results(results, spec.controls, ("image",))
    first, second, _third = answer.detections
    assert dict(first.attributes) == {"transcription": "Hello world", "words": 2, "quality": 4}
    assert dict(second.attributes) == {"transcription": "Dear John", "legible": ("Faded",)}
    (plan,) = plan_requests(spec)
    items = json.loads(render_answer(plan.kind, answer) or "[]")
    assert items[1]["attributes"] == {"transcription": "Dear John", "legible": ["Faded"]}
    # and what an example shows parses back to the same answers
    again = KINDS[plan.kind].parse(json.dumps(items), plan, "STOP", 1)
    assert [d.attributes for d in again.detections] == [d.attributes for d in answer.detections]


def test_malformed_attributes_cost_only_themselves():
    from gemini_ls.gemini.attribute_values import MAX_TEXT

    items = [
        {"box_2d": [100, 100, 200, 400], "label": "Text", "attributes": ["not", "an", "object"]},
        {"box_2d": [300, 100, 400, 400], "label": "Handwriting",
         "attributes": {"transcription": {"nested": 1}, "legible": {"x": "Legible"}, "words": "many", "quality": True}},
        {"box_2d": [500, 100, 600, 400], "label": "Text", "attributes": {"transcription": "x" * (3 * MAX_TEXT), "words": "7"}},
        {"box_2d": [700, 100, 800, 400], "label": "Handwriting", "attributes": {"legible": "legible", "words": -1, "quality": 0}},
    ]
    results, config = _results("Rectangle", items)
    assert LabelInterface(config).validate_prediction({"result": results}, return_errors=True) == []
    first, second, third, fourth = _by_id(results).values()
    assert set(first) == set(second) == {"shape", "label"}  # the regions stay, without answers
    assert len(third["transcription"]["value"]["text"][0]) == MAX_TEXT and third["words"]["value"]["number"] == 7
    assert set(fourth) == {"shape", "label", "legible"} and fourth["legible"]["value"]["choices"] == ["Legible"]


def test_per_region_controls_follow_their_own_image():
    config = (
        '<View><Image name="a" value="$a"/><Image name="b" value="$b"/>'
        '<RectangleLabels name="ra" toName="a"><Label value="Text"/></RectangleLabels>'
        '<RectangleLabels name="rb" toName="b"><Label value="Text"/></RectangleLabels>'
        '<TextArea name="ta" toName="a" perRegion="true"/></View>'
    )
    spec = parse_label_config(config)
    assert {c.name: [a.name for a in c.attributes] for c in spec.controls} == {"ra": ["ta"], "rb": []}
    plans = {p.image_names: p for p in plan_requests(spec)}
    assert [a.name for a, _ in plans[("a",)].attributes] == ["ta"] and plans[("b",)].attributes == ()
