"""Handlers' output, checked field by field and by the SDK's own prediction validator."""

from __future__ import annotations

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.detections import Detection, ImageMeta, NormBox, NormPoint, ParsedAnswer
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.regions import REGISTRY, convert_for

ONE_IMAGE = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="rect" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
  <BrushLabels name="brush" toName="image"><Label value="Cat"/><Label value="Dog"/></BrushLabels>
  <PolygonLabels name="poly" toName="image" model_min_area="4"><Label value="Cat"/><Label value="Dog"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="Nose"/></KeyPointLabels>
  <Choices name="scene" toName="image"><Choice value="Indoor"/><Choice value="Outdoor"/></Choices>
  <TextArea name="caption" toName="image"/>
</View>"""

TWO_IMAGES = """<View>
  <Image name="image" value="$image"/>
  <Image name="image2" value="$image2"/>
  <RectangleLabels name="rect" toName="image,image2"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
  <BrushLabels name="brush" toName="image2"><Label value="Cat"/></BrushLabels>
  <Choices name="scene" toName="image,image2" choice="multiple"><Choice value="Indoor"/><Choice value="Outdoor"/></Choices>
  <TextArea name="caption" toName="image,image2"/>
</View>"""


def disc(size: int = 256) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(xx - size / 2, yy - size / 2) / (size / 2)
    return np.where(r < 0.8, 230, 10).astype(np.uint8)


def two_discs(size: int = 256) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[20:100, 20:100] = 255
    m[150:240, 140:240] = 255
    return m


CAT = Detection("Cat", "cat", box=NormBox(100, 200, 500, 600), mask=disc(), score=0.9)
DOG = Detection("Dog", "dog", box=NormBox(0, 0, 1000, 1000), mask=two_discs(), score=0.7)
DOG_NO_MASK = Detection("Dog", "dog", box=NormBox(600, 600, 900, 900), mask=None, score=0.8)
NOSE = Detection("Nose", "nose", point=NormPoint(y=250, x=750), score=0.6)
NOSE_BOX_ONLY = Detection("Nose", "nose", box=NormBox(0, 0, 200, 400))
ANSWER = ParsedAnswer(
    detections=(CAT, DOG, DOG_NO_MASK, NOSE, NOSE_BOX_ONLY),
    choices=("Outdoor", "Indoor", "Zebra"),
    text="  A cat and a dog.  ",
)
IMAGE = ImageMeta("image", 640, 480)


def controls(config: str):
    return {c.name: c for c in parse_label_config(config).controls}


def all_results(config: str, images: dict[str, ImageMeta], answer: ParsedAnswer) -> list[dict]:
    return [r for c in parse_label_config(config).controls for r in list(convert_for(c, images, answer).results)]


def test_registry_covers_every_tag():
    assert set(REGISTRY) == {
        "RectangleLabels", "BrushLabels", "PolygonLabels", "KeyPointLabels", "EllipseLabels", "Choices", "TextArea",
        "Rectangle", "Polygon", "Brush", "KeyPoint", "Ellipse", "Number", "Rating", "Taxonomy",
    }
    assert all(REGISTRY[tag].tag == tag for tag in REGISTRY)


def test_all_six_controls_validate_with_label_interface():
    results = all_results(ONE_IMAGE, {"image": IMAGE}, ANSWER)
    errors = LabelInterface(ONE_IMAGE).validate_prediction({"result": results}, return_errors=True)
    assert errors == []
    by_type = {}
    for r in results:
        by_type.setdefault(r["type"], []).append(r)
    assert len(by_type["rectanglelabels"]) == 3  # boxes of Cat, Dog and the mask-less Dog
    assert len(by_type["brushlabels"]) == 2  # the mask-less Dog has no brush region
    assert len(by_type["polygonlabels"]) == 3  # Cat's disc + Dog's two parts
    assert len(by_type["keypointlabels"]) == 2
    assert by_type["choices"][0]["value"] == {"choices": ["Outdoor"]}  # single choice: first valid
    assert by_type["textarea"][0]["value"] == {"text": ["A cat and a dog."]}
    ids = [r["id"] for r in results]
    assert len(ids) == len(set(ids))


def test_rectangle_fields():
    (rect, *_) = list(convert_for(controls(ONE_IMAGE)["rect"], {"image": IMAGE}, ANSWER).results)
    assert rect == {
        "id": rect["id"],
        "from_name": "rect",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 640,
        "original_height": 480,
        "image_rotation": 0,
        "value": {"x": 20.0, "y": 10.0, "width": 40.0, "height": 40.0, "rotation": 0, "rectanglelabels": ["Cat"]},
        "score": 0.9,
    }


def test_ids_are_stable_and_depend_on_geometry():
    control = controls(ONE_IMAGE)["rect"]
    first = list(convert_for(control, {"image": IMAGE}, ANSWER).results)
    again = list(convert_for(control, {"image": IMAGE}, ANSWER).results)
    assert [r["id"] for r in first] == [r["id"] for r in again]
    moved = ParsedAnswer(detections=(Detection("Cat", "cat", box=NormBox(101, 200, 500, 600), score=0.9),))
    assert list(convert_for(control, {"image": IMAGE}, moved).results)[0]["id"] != first[0]["id"]


def test_duplicate_detections_get_distinct_ids():
    answer = ParsedAnswer(detections=(CAT, CAT, CAT))
    ids = [r["id"] for r in list(convert_for(controls(ONE_IMAGE)["rect"], {"image": IMAGE}, answer).results)]
    assert len(ids) == 3 and len(set(ids)) == 3


def test_brush_mask_lands_in_its_box():
    control = controls(ONE_IMAGE)["brush"]
    conversion = convert_for(control, {"image": IMAGE}, ANSWER)
    assert conversion.dropped == {"no_mask": 1}
    cat = conversion.results[0]
    assert cat["value"]["brushlabels"] == ["Cat"] and cat["value"]["format"] == "rle"
    alpha = decode_rle(cat["value"]["rle"]).reshape(480, 640, 4)[:, :, 3]
    ys, xs = np.nonzero(alpha)
    assert set(np.unique(alpha)) == {0, 255}
    # box 200..600 x 100..500 of 1000 -> pixels x 128..384, y 48..240; disc radius 0.8 of the half-box
    assert 128 <= xs.min() and xs.max() < 384 and 48 <= ys.min() and ys.max() < 240
    cx, cy = xs.mean(), ys.mean()
    assert abs(cx - 256) < 2 and abs(cy - 144) < 2


def test_polygon_splits_parts_and_clamps():
    conversion = convert_for(controls(ONE_IMAGE)["poly"], {"image": IMAGE}, ANSWER)
    dog_parts = [r for r in conversion.results if r["value"]["polygonlabels"] == ["Dog"]]
    assert len(dog_parts) == 2
    for r in conversion.results:
        assert r["value"]["closed"] is True
        assert len(r["value"]["points"]) >= 3
        assert all(0 <= v <= 100 for p in r["value"]["points"] for v in p)
    assert conversion.dropped == {"no_mask": 1}


def test_keypoint_uses_point_or_box_centre():
    results = list(convert_for(controls(ONE_IMAGE)["kp"], {"image": IMAGE}, ANSWER).results)
    assert [(r["value"]["x"], r["value"]["y"]) for r in results] == [(75.0, 25.0), (20.0, 10.0)]
    assert results[0]["score"] == 0.6 and "score" not in results[1]
    assert all(0 < r["value"]["width"] <= 1 for r in results)


def test_score_threshold_and_max_objects():
    base = controls(ONE_IMAGE)["rect"]
    strict = type(base)(**{**base.__dict__, "settings": type(base.settings)(
        **{**base.settings.__dict__, "score_threshold": 0.75, "max_objects": 1})})
    unscored = Detection("Cat", "cat", box=NormBox(1, 1, 2, 2))
    answer = ParsedAnswer(detections=(DOG, CAT, DOG_NO_MASK, unscored))
    conversion = convert_for(strict, {"image": IMAGE}, answer)
    # DOG (0.7) is below 0.75; of CAT 0.9, DOG_NO_MASK 0.8 and the unscored one, CAT wins
    assert [r["score"] for r in conversion.results] == [0.9]
    assert conversion.dropped == {"below_score": 1, "over_max_objects": 2}


def test_labels_of_other_controls_are_ignored_not_dropped():
    conversion = convert_for(controls(ONE_IMAGE)["kp"], {"image": IMAGE}, ParsedAnswer(detections=(CAT, DOG)))
    assert conversion.results == () and conversion.dropped == {}


def test_empty_answers_give_nothing():
    empty = ParsedAnswer(text="   ", choices=("Zebra",))
    assert all_results(ONE_IMAGE, {"image": IMAGE}, empty) == []


def test_two_images_validate_and_route_by_image_index():
    images = {"image": ImageMeta("image", 640, 480), "image2": ImageMeta("image2", 300, 200)}
    answer = ParsedAnswer(
        detections=(
            CAT,
            Detection("Dog", "dog", box=NormBox(0, 0, 500, 500), score=0.5, image_index=1),
            Detection("Cat", "cat", box=NormBox(0, 0, 500, 500), mask=disc(), image_index=0),  # brush: image2 is index 0
        ),
        choices=("Indoor", "Outdoor"),
        text="two photos",
    )
    results = all_results(TWO_IMAGES, images, answer)
    errors = LabelInterface(TWO_IMAGES).validate_prediction({"result": results}, return_errors=True)
    assert errors == []
    rects = [r for r in results if r["type"] == "rectanglelabels"]
    # image_index is the position in the control's own toName list (image, image2 for rect)
    assert [(r["to_name"], r["value"]["rectanglelabels"], r["original_width"]) for r in rects] == [
        ("image", ["Cat"], 640), ("image", ["Cat"], 640), ("image2", ["Dog"], 300)]
    brushes = [r for r in results if r["type"] == "brushlabels"]
    assert [(r["to_name"], r["original_width"]) for r in brushes] == [("image2", 300)] * 2
    per_task = [r for r in results if r["type"] in ("choices", "textarea")]
    # once per task, on the first toName image (a to_name must be a single object name)
    assert [(r["type"], r["to_name"]) for r in per_task] == [("choices", "image"), ("textarea", "image")]
    assert per_task[0]["value"] == {"choices": ["Indoor", "Outdoor"]}


def test_per_task_results_fall_back_to_the_first_available_image():
    images = {"image2": ImageMeta("image2", 300, 200)}
    results = list(convert_for(controls(TWO_IMAGES)["caption"], images, ParsedAnswer(text="x")).results)
    assert [r["to_name"] for r in results] == ["image2"]


def test_comma_to_name_is_rejected_by_the_validator():
    """Why per-task results name one image: the joined toName is not a valid to_name."""
    result = {"id": "a", "from_name": "caption", "to_name": "image,image2", "type": "textarea",
              "value": {"text": ["x"]}}
    errors = LabelInterface(TWO_IMAGES).validate_prediction({"result": [result]}, return_errors=True)
    assert errors


def test_handler_rejects_an_image_the_control_does_not_target():
    with pytest.raises(ValueError):
        REGISTRY["RectangleLabels"].convert(controls(ONE_IMAGE)["rect"], ImageMeta("other", 10, 10), ANSWER)
