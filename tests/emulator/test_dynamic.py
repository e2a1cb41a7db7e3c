"""The emulator's answers to labels from the task (emulator/dynamic.py), from pixels: a reference
picture matched to the scene object of the same colour and outline, a phrase grounded to one object."""

from __future__ import annotations

import pytest

from gemini_ls.emulator.answers import png_mask
from gemini_ls.emulator.dynamic import MIN_SIMILARITY, ground, items_for, outline_similarity
from gemini_ls.emulator.scenes import box_iou, encode_image, make_scene, norm_box_to_pixels
from gemini_ls.emulator.understanding import read_task
from gemini_ls.emulator.vision import decode_raw, see


def _seen(scene, fmt: str = "png"):
    return see(decode_raw(encode_image(scene.image, fmt)))


def _alone(name: str, size: int = 140, seed: int = 0):
    seen = _seen(make_scene(size, size, names=[name], seed=seed))
    return max(seen.objects, key=lambda o: o.area)


@pytest.mark.parametrize(("a", "b", "alike"), [
    ("red circle", "red circle", True),
    ("blue square", "blue square", True),
    ("green triangle", "green triangle", True),
    ("orange rectangle", "orange rectangle", True),
    ("red circle", "red square", False),
    ("red square", "red rectangle", False),
    ("red triangle", "red square", False),
    ("red triangle", "red circle", False),
])
def test_outlines_are_alike_only_for_the_same_shape(a, b, alike):
    for seed in range(3):  # other sizes, other aspects of the rectangle
        score = outline_similarity(_alone(a, seed=seed), _alone(b, size=300, seed=seed + 7))
        assert (score >= MIN_SIMILARITY) == alike, (a, b, seed, score)


def test_reference_pictures_label_the_objects_that_look_like_them():
    scene = make_scene(640, 480, names=["red circle", "red square", "blue square", "green triangle", "red circle"],
                       seed=5, background="noisy")
    cola = make_scene(120, 120, names=["red circle"], seed=1)
    energy = make_scene(150, 150, names=["blue square"], seed=2)
    images = [_seen(scene, "jpeg"), _seen(cola), _seen(energy)]
    user = ("Image 1 is the image to search; images 2 to 3 are reference pictures of one labelled object each.\n"
            "Detect every object in the image that matches one of these labels (label name, then what it looks like):\n"
            '- "Cola": the object shown in reference image 2\n- "Energy": the object shown in reference image 3\n'
            '- "Lime": green triangle\nOutput a JSON list ... "box_2d" ... Limit to 25 objects.')
    items = items_for(read_task("", user), user, images, png_mask)
    assert items is not None and all("image_index" not in i for i in items)  # the references are not searched
    got = sorted((i["label"], norm_box_to_pixels(i["box_2d"], scene.width, scene.height)) for i in items)
    want = sorted([("Cola", o.box) for o in scene.matching("red", "circle")] + [("Energy", scene.matching("blue")[0].box)]
                  + [("Lime", scene.matching("green")[0].box)])
    assert [g[0] for g in got] == [w[0] for w in want]
    assert all(box_iou(g[1], w[1]) >= 0.9 for g, w in zip(got, want, strict=True))


def test_phrases_are_grounded_to_one_object_each():
    scene = make_scene(800, 600, names=["red circle", "red circle", "blue square", "green triangle"], seed=9)
    seen = _seen(scene)
    reds = sorted(scene.matching("red", "circle"), key=lambda o: o.centre[0])
    cases = {
        "the red circle left of the red circle": reds[0].box,
        "red circle to the right of red circle": reds[-1].box,
        "a green triangle with three corners": scene.matching("green")[0].box,
        "the yellow square": None,  # nothing yellow
        "the cat on the mat": None,  # names no colour or shape
        "blue square above the purple circle": None,  # no such anchor
    }
    for phrase, box in cases.items():
        found = ground(phrase, seen)
        if box is None:
            assert found is None, phrase
        else:
            assert found is not None and box_iou(found.box, box) >= 0.9, phrase
    user = ('Detect ...\n- "the red circle left of the red circle"\n- "the yellow square"\n'
            "Each label above is a referring expression: ... exactly one entry per phrase ... box_2d")
    items = items_for(read_task("", user), user, [seen], None)
    assert [i["label"] for i in items] == ["the red circle left of the red circle"]


def test_other_prompts_are_left_to_the_generic_answer():
    user = 'Detect every object ...:\n- "Cat": red square\nOutput box_2d'
    assert items_for(read_task("", user), user, [_seen(make_scene(200, 200, 2, seed=1))], None) is None
