"""interactive/: the context Label Studio sends, parsed; the box crop and its mapping back (pure)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gemini_ls.detections import Detection, NormBox, ParsedAnswer, PolygonMask
from gemini_ls.interactive.context import ContextError, DrawnBox, parse_context
from gemini_ls.interactive.crop import CROP_MAX_SIDE, crop_frame, crop_image, decode_oriented


def test_empty_contexts():
    for context in (None, {}, {"result": []}, {"result": [{"type": "choices", "value": {"choices": ["A"]}}]}):
        assert parse_context(context).empty


def test_clicks_box_phrase_and_label():
    ctx = {"result": [
        {"type": "keypointlabels", "from_name": "kp", "to_name": "img", "is_positive": True,
         "value": {"x": 10, "y": 20, "keypointlabels": ["Car"]}},
        {"type": "keypointlabels", "from_name": "kp", "to_name": "img", "is_positive": False, "value": {"x": 30, "y": 40}},
        {"type": "keypointlabels", "from_name": "kp", "to_name": "img", "value": {"x": 150, "y": -3}},
    ]}
    interaction = parse_context(ctx)
    assert interaction.kind == "click" and interaction.label == "Car" and interaction.image == "img"
    assert [(c.x, c.y, c.positive) for c in interaction.clicks] == [(10, 20, True), (30, 40, False), (100, 0, True)]
    box = parse_context({"result": [{"type": "rectanglelabels", "from_name": "r", "to_name": "img",
                                      "value": {"x": 90, "y": 10, "width": 30, "height": 20, "rectanglelabels": ["Dog"]}}]})
    assert box.kind == "box" and box.box == DrawnBox(90, 10, 10, 20) and box.label == "Dog" and box.sources == ("r",)
    phrase = parse_context({"result": [{"type": "textarea", "from_name": "p", "value": {"text": ["  the red\n circles "]}}]})
    assert phrase.kind == "phrase" and phrase.phrase == "the red circles" and phrase.label is None


@pytest.mark.parametrize("context, message", [
    ({"result": "click"}, "must be a list"),
    ({"result": [{"type": "keypointlabels"}]}, "with a 'value'"),
    ({"result": [{"type": "keypointlabels", "value": {"x": True, "y": 1}}]}, "x must be a number"),
    ({"result": [{"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 0, "height": 5}}]}, "no area"),
])
def test_malformed_contexts_are_clear_errors(context, message):
    with pytest.raises(ContextError, match=message):
        parse_context(context)


def test_crop_frame_margin_clipping_and_mapping_back():
    frame = crop_frame(DrawnBox(x=10, y=10, width=20, height=10), 1000, 500)
    # 20 % margin of a 200 x 50 px box: 40 px and 10 px, clipped at the image's edges
    assert (frame.x0, frame.y0, frame.x1, frame.y1) == (60, 40, 340, 110)
    assert frame.box_in_crop(DrawnBox(x=10, y=10, width=20, height=10)) == [143, 143, 857, 857]
    answer = ParsedAnswer(detections=(Detection("Car", "Car", box=NormBox(0, 0, 1000, 1000),
                                                polygon=PolygonMask((((0.0, 0.0), (1000.0, 0.0), (500.0, 1000.0)),))),))
    (det,) = frame.to_image(answer).detections
    assert (det.box.xmin, det.box.ymin, det.box.xmax, det.box.ymax) == (60, 80, 340, 220)
    assert det.polygon.rings == (((60.0, 80.0), (340.0, 80.0), (200.0, 220.0)),)
    edge = crop_frame(DrawnBox(x=0, y=0, width=100, height=100), 640, 480)
    assert (edge.x0, edge.y0, edge.x1, edge.y1) == (0, 0, 640, 480)


def test_crop_is_at_most_768_px_and_shows_the_box():
    pixels = np.zeros((3000, 4000, 3), np.uint8)
    pixels[1000:2000, 1000:3000] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    frame = crop_frame(DrawnBox(x=25, y=100 / 3, width=50, height=100 / 3), 4000, 3000)
    crop = crop_image(decode_oriented(buf.getvalue()), frame, name="image")
    assert max(crop.width, crop.height) == CROP_MAX_SIDE and crop.mime_type == "image/jpeg"
    sent = np.asarray(Image.open(io.BytesIO(crop.data)).convert("RGB"))
    assert sent[sent.shape[0] // 2, sent.shape[1] // 2, 0] > 200  # the box's centre is red
    assert sent[2, 2, 0] < 50  # the margin is outside it
