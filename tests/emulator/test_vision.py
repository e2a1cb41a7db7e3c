"""The emulator "sees" scene objects by their pixels: boxes and masks against ground truth."""

from __future__ import annotations

import pytest
from google.genai import types

from gemini_ls.emulator.scenes import box_iou, encode_image, make_scene, mask_iou, norm_box_to_pixels, raw_box
from gemini_ls.gemini.prompts import detection_prompt, segmentation_prompt
from gemini_ls.labelconfig import LabelSpec

from .helpers import MIME, best_match, mask_from_item, parse_json_text

ALL = (LabelSpec("thing", "red, orange, yellow, green, cyan, blue, purple or magenta objects"),)


def ask(client, data: bytes, mime: str, prompt) -> list[dict]:
    config = types.GenerateContentConfig(
        system_instruction=prompt.system,
        response_mime_type="application/json" if prompt.json_mode else None,
        response_schema=prompt.response_schema,
        max_output_tokens=65536,
    )
    resp = client.models.generate_content(
        model="gemini-2.5-flash", contents=[types.Part.from_bytes(data=data, mime_type=mime), prompt.user], config=config
    )
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP
    return parse_json_text(resp.text)


CASES = [
    # (width, height, objects, background, format)
    (64, 64, 1, "plain", "png"),
    (64, 64, 30, "noisy", "png"),
    (640, 480, 8, "noisy", "jpeg"),
    (800, 600, 10, "noisy", "webp"),
    (512, 384, 6, "noisy", "heic"),
    (1500, 1000, 30, "plain", "jpeg"),
    (8000, 1200, 12, "noisy", "jpeg"),
    (8000, 8000, 3, "plain", "png"),
]


@pytest.mark.parametrize("width,height,n,background,fmt", CASES)
def test_segmentation_boxes_and_masks_match_ground_truth(genai_client, width, height, n, background, fmt):
    scene = make_scene(width, height, n, seed=width + n, background=background)
    data = encode_image(scene.image, fmt)
    items = ask(genai_client, data, MIME[fmt], segmentation_prompt(ALL, 50))
    assert len(items) == n
    for obj in scene.objects:
        iou, item = best_match(obj, items, width, height)
        assert iou >= 0.9, (obj.name, obj.box, iou)
        assert item["label"] == "thing"
        miou = mask_iou(mask_from_item(item, width, height), obj.full_mask(width, height))
        assert miou >= 0.85, (obj.name, miou)


def test_detection_only_returns_the_objects_asked_for(genai_client):
    scene = make_scene(900, 700, names=["red square", "red circle", "blue circle", "green triangle", "green rectangle"], seed=3)
    labels = (LabelSpec("Red square", "red square"), LabelSpec("Circle", "circles"), LabelSpec("Cat", "a cat"))
    items = ask(genai_client, encode_image(scene.image, "png"), "image/png", detection_prompt(labels, 25))
    got = sorted(i["label"] for i in items)
    assert got == ["Circle", "Circle", "Red square"]
    for item in items:
        assert set(item) == {"box_2d", "label", "confidence"} and 0.9 <= item["confidence"] < 1.0
        assert all(isinstance(v, int) and 0 <= v <= 1000 for v in item["box_2d"])
    red = scene.matching("red", "square")[0]
    assert best_match(red, [i for i in items if i["label"] == "Red square"], 900, 700)[0] >= 0.9


def test_exif_rotated_image_sent_raw_gives_raw_frame_boxes(genai_client):
    scene = make_scene(600, 400, names=["red square", "blue rectangle", "green triangle"], seed=9)
    data = encode_image(scene.image, "jpeg", orientation=6)  # raw pixels are 400x600
    items = ask(genai_client, data, "image/jpeg", detection_prompt(ALL, 25))
    assert len(items) == 3
    for obj in scene.objects:
        expected_raw = raw_box(obj.box, 600, 400, 6)
        raw_ious = [box_iou(expected_raw, norm_box_to_pixels(i["box_2d"], 400, 600)) for i in items]
        assert max(raw_ious) >= 0.9
        # read as displayed-frame boxes, they are wrong: a client must transpose before sending
        assert best_match(obj, items, 600, 400)[0] < 0.5
