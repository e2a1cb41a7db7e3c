"""Reading Label Studio results back into typed answers: the brush RLE decoder against the encoder,
each handler's `reverse` against its own `convert`, and which results `answer_from_results` reads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from gemini_ls.detections import Detection, ImageMeta, NormBox, NormPoint, ParsedAnswer
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.regions import REGISTRY, answer_from_results, convert_for
from gemini_ls.regions.reverse import merge
from gemini_ls.regions.rle import decode_brush, encode_brush_rle, encode_full_mask
from tests.unit.regions.test_rle import masks_in_boxes, pasted

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Image name="image2" value="$image2"/>
  <RectangleLabels name="rect" toName="image,image2"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
  <BrushLabels name="brush" toName="image" model_min_area="1"><Label value="Cat"/></BrushLabels>
  <PolygonLabels name="poly" toName="image" model_polygon_tolerance="0" model_min_area="1"><Label value="Cat"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="Nose"/></KeyPointLabels>
  <Choices name="scene" toName="image,image2" choice="multiple"><Choice value="Indoor"/><Choice value="Outdoor"/></Choices>
  <TextArea name="caption" toName="image"/>
</View>"""
IMAGES = {"image": ImageMeta("image", 640, 480), "image2": ImageMeta("image2", 320, 200)}


@pytest.fixture(scope="module")
def spec():
    from gemini_ls.settings import Settings

    return parse_label_config(CONFIG, Settings().defaults)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masks_in_boxes())
def test_decoding_what_the_encoder_wrote_gives_the_same_mask(case):
    region, box, width, height = case
    decoded = decode_brush({"rle": encode_brush_rle(region, box, width, height)}, width, height)
    assert decoded is not None and decoded.shape == (height, width)
    assert np.array_equal(decoded, pasted(region, box, width, height) > 0)


def test_a_missing_or_malformed_rle_decodes_to_no_mask():
    assert decode_brush({}, 4, 4) is None
    assert decode_brush({"rle": []}, 4, 4) is None
    assert decode_brush({"rle": [1, 2, 3]}, 4, 4) is None  # truncated: no crash
    assert decode_brush({"rle": encode_full_mask(np.ones((4, 4), bool))}, 5, 5) is None  # another size


def _reverse_all(results):
    """control name -> its results read back by the handler of their type, merged."""
    out: dict[str, list[ParsedAnswer]] = {}
    for r in results:
        (tag,) = (t for t in REGISTRY if r["type"] == t.lower())
        out.setdefault(r["from_name"], []).append(REGISTRY[tag].reverse(r, 0))
    return {name: merge(answers) for name, answers in out.items()}


def test_every_handler_reads_back_what_it_wrote(spec):
    controls = {c.name: c for c in spec.controls}
    prob = np.zeros((64, 64), np.uint8)
    prob[16:48, 8:40] = 255  # a block inside the box: the box's own pixels are not all the mask
    answer = ParsedAnswer(detections=(
        Detection("Cat", "cat", box=NormBox(100, 200, 500, 600)),
        Detection("Cat", "cat", box=NormBox(250, 250, 750, 750), mask=prob),
        Detection("Nose", "nose", point=NormPoint(y=300, x=700)),
    ), choices=("Outdoor",), text=" a cat ")
    results = [r for name in ("rect", "brush", "poly", "kp", "scene", "caption")
               for r in convert_for(controls[name], IMAGES, answer).results]
    back = _reverse_all(results)
    assert set(back) == {c.name for c in spec.controls}  # one reverse per control tag, all exercised

    rect = back["rect"].detections[0]  # the first of the two boxes, in Gemini's order
    assert len(back["rect"].detections) == 2
    assert (rect.label, rect.score, rect.point) == ("Cat", None, None)  # an annotator's answer has no score
    assert (rect.box.ymin, rect.box.xmin, rect.box.ymax, rect.box.xmax) == pytest.approx((100, 200, 500, 600))

    (brush,) = back["brush"].detections  # the block's own box, and the block as the map
    assert (brush.box.xmin, brush.box.ymin, brush.box.xmax, brush.box.ymax) == pytest.approx((312.5, 375, 562.5, 625), abs=2)
    assert brush.mask is not None and brush.mask.shape == (120, 160) and (brush.mask == 255).mean() > 0.95  # resize rounds corners

    (poly,) = back["poly"].detections
    assert poly.polygon is not None and poly.box is not None and poly.mask is None
    assert poly.polygon.bounds().xmin == pytest.approx(poly.box.xmin, abs=1e-9)
    (point,) = back["kp"].detections
    assert point.box is None and (point.point.y, point.point.x) == pytest.approx((300, 700))
    assert back["scene"].choices == ("Outdoor",) and back["caption"].text == "a cat"


def test_rotated_rectangles_read_as_the_box_around_them():
    r = {"type": "rectanglelabels", "value": {"x": 50, "y": 50, "width": 10, "height": 10, "rotation": 90,
                                               "rectanglelabels": ["Cat"]}}
    (det,) = REGISTRY["RectangleLabels"].reverse(r, 0).detections
    assert (det.box.xmin, det.box.ymin, det.box.xmax, det.box.ymax) == pytest.approx((400, 500, 500, 600))
    assert REGISTRY["RectangleLabels"].reverse({"value": {"x": 1, "y": 1, "width": 0, "height": 5, "rectanglelabels": ["Cat"]}}, 0) \
        == ParsedAnswer()  # no area
    assert REGISTRY["RectangleLabels"].reverse({"value": {"x": 1, "y": 1, "width": 5, "height": 5}}, 0) == ParsedAnswer()  # no label


def test_answer_from_results_reads_only_the_controls_and_images_asked_for(spec):
    controls = {c.name: c for c in spec.controls}

    def rect(name, to, label="Cat"):
        return {"from_name": name, "to_name": to, "type": "rectanglelabels",
                "value": {"x": 10, "y": 10, "width": 5, "height": 5, "rectanglelabels": [label]}}

    results = [rect("rect", "image"), rect("rect", "image2", "Dog"), rect("other", "image"), {"from_name": "rect"},
               {"from_name": "rect", "to_name": "image", "type": "relation", "value": {}},
               {"from_name": "scene", "to_name": "image2", "type": "choices", "value": {"choices": ["Indoor"]}}]
    one = answer_from_results(results, [controls["rect"]], ("image2",))
    assert [(d.label, d.image_index) for d in one.detections] == [("Dog", 0)]
    both = answer_from_results(results, [controls["rect"]], ("image", "image2"))
    assert [(d.label, d.image_index) for d in both.detections] == [("Cat", 0), ("Dog", 1)]
    # a per-task answer names one image, whichever: it counts for the request of all the control's images
    assert answer_from_results(results, [controls["scene"]], ("image",)).choices == ("Indoor",)
    # a bare "rectangle" result (no labels in its type) reads like "rectanglelabels"
    bare = {**rect("rect", "image"), "type": "rectangle"}
    assert len(answer_from_results([bare], [controls["rect"]], ("image",)).detections) == 1
