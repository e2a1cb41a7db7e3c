"""The emulator answers the backend's own prompts (gemini/prompts.py) and free prompts."""

from __future__ import annotations

import json

from google.genai import types

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.gemini.prompts import choice_prompt, detection_prompt, pointing_prompt, text_prompt
from gemini_ls.labelconfig import LabelSpec

from .helpers import parse_json_text

MODEL = "gemini-2.5-flash"
NAMES = ["red square", "red circle", "blue circle", "green triangle", "green triangle", "yellow rectangle"]


def part_of(scene, fmt="png") -> types.Part:
    return types.Part.from_bytes(data=encode_image(scene.image, fmt), mime_type=f"image/{fmt}")


def run(client, parts, prompt):
    config = types.GenerateContentConfig(
        system_instruction=prompt.system,
        response_mime_type="application/json" if prompt.json_mode else None,
        response_schema=prompt.response_schema,
    )
    return client.models.generate_content(model=MODEL, contents=[*parts, prompt.user], config=config).text


def test_descriptions_select_objects(genai_client):
    scene = make_scene(800, 600, names=NAMES, seed=4)
    labels = (
        LabelSpec("A", "anything green"),
        LabelSpec("B", "blue objects"),
        LabelSpec("red square"),
        LabelSpec("D", "a dog"),
        LabelSpec("E", "rectangles"),
    )
    items = json.loads(run(genai_client, [part_of(scene)], detection_prompt(labels, 25)))
    assert sorted(i["label"] for i in items) == ["A", "A", "B", "E", "red square"]


def test_limit_is_respected(genai_client):
    scene = make_scene(800, 600, names=NAMES, seed=4)
    items = json.loads(run(genai_client, [part_of(scene)], detection_prompt((LabelSpec("x", "red, blue, green or yellow shapes"),), 3)))
    assert len(items) == 3


def test_points_at_object_centres(genai_client):
    scene = make_scene(800, 600, names=NAMES, seed=4)
    items = json.loads(run(genai_client, [part_of(scene)], pointing_prompt((LabelSpec("Tri", "green triangles"),), 25)))
    assert [i["label"] for i in items] == ["Tri", "Tri"]
    for obj in scene.matching("green", "triangle"):
        cx, cy = obj.centre
        assert any(abs(i["point"][0] - cy / 600 * 1000) <= 3 and abs(i["point"][1] - cx / 800 * 1000) <= 3 for i in items)


def test_classification_single_and_multiple(genai_client):
    scene = make_scene(800, 600, names=["blue square", "red circle", "red triangle"], seed=1)
    options = (LabelSpec("Warm", "mostly red"), LabelSpec("Cold", "mostly blue"), LabelSpec("Leafy", "green"))
    single = json.loads(run(genai_client, [part_of(scene)], choice_prompt(options, multiple=False)))
    assert single == [{"red": "Warm", "blue": "Cold"}[scene.dominant_colour()]]
    multi = json.loads(run(genai_client, [part_of(scene)], choice_prompt(options, multiple=True)))
    assert multi == ["Warm", "Cold"]


def test_caption_and_multi_image(genai_client):
    one = make_scene(400, 300, names=["red square", "blue circle", "green triangle", "green triangle"], seed=2)
    two = make_scene(400, 300, names=["red square", "orange circle"], seed=3, background="noisy")
    caption = run(genai_client, [part_of(one)], text_prompt(None))
    assert caption.endswith(" on a white background.")  # objects are named in reading order
    for phrase in ("a red square", "a blue circle", "two green triangles"):
        assert phrase in caption.lower()
    both = run(genai_client, [part_of(one), part_of(two)], text_prompt("Describe each image."))
    assert both.startswith("Image 1: ") and "Image 2: " in both and "grey noisy background" in both
    differ = run(genai_client, [part_of(one), part_of(two)], text_prompt(None, n_images=2))
    assert "blue circle" in differ and "orange circle" in differ and "red square" not in differ


def test_detection_over_several_images_has_image_index(genai_client):
    one = make_scene(400, 300, names=["red square"], seed=2)
    two = make_scene(400, 300, names=["blue circle", "red square"], seed=3)
    items = json.loads(run(genai_client, [part_of(one), part_of(two)], detection_prompt((LabelSpec("r", "red squares"),), 25)))
    assert sorted(i["image_index"] for i in items) == [0, 1]


def test_free_prompt_labels_are_object_names(genai_client):
    scene = make_scene(600, 400, names=["red square", "red square", "blue circle"], seed=6)
    text = genai_client.models.generate_content(model=MODEL, contents=[part_of(scene, "webp"), "Detect the red squares"]).text
    assert [i["label"] for i in parse_json_text(text)] == ["red square", "red square"]
    nothing = genai_client.models.generate_content(model=MODEL, contents=[part_of(scene), "Detect the 2d bounding boxes of the cats"]).text
    assert parse_json_text(nothing) == []
