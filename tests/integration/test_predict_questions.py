"""Questions about the whole image through the HTTP server, the real google-genai SDK and the emulator
(which answers from the pixels): Label Studio's visual-question-answering template (TextAreas bound to
<Text> questions read from each task), Number and Rating on an image, Taxonomy; and a 1 MB question
that fails its own task only."""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.taskquestions import QUESTION_MAX_CHARS
from tests.e2e.templates import template_config
from tests.helpers import config, data_uri

VQA = template_config("computer-vision", "visual-question-answering")
WHOLE = config(
    '<Number name="circles" toName="image" min="0" max="20" hint="How many circles are there?"/>',
    '<Rating name="clutter" toName="image" maxRating="5"/>',
    '<Taxonomy name="kind" toName="image">'
    '<Choice value="Shapes"><Choice value="Circle" hint="a circle"/><Choice value="Square" hint="a square"/>'
    '<Choice value="Triangle" hint="a triangle"/></Choice>'
    '<Choice value="Colours"><Choice value="Red"/><Choice value="Blue"/><Choice value="Green"/></Choice></Taxonomy>',
)
NAMES = ["red square", "blue circle", "blue circle", "green triangle"]


def _scene():
    return make_scene(640, 480, names=NAMES, seed=23)


def _image(scene) -> str:
    return data_uri(encode_image(scene.image, "png"), "image/png")


def _predict(backend, tasks, label_config):
    resp = backend.post("/predict", {"tasks": tasks, "label_config": label_config, "params": {"context": None}})
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def _answers(entry) -> dict[str, tuple[str, str]]:
    return {r["from_name"]: (r["to_name"], r["value"]["text"][0]) for r in entry["result"]}


def test_the_vqa_template_answers_each_question_about_its_image(backend_server):
    scene = _scene()
    questions = {"q1": "How many blue circles are there?", "q2": "What colour is the square?",
                 "q3": "Is there a green triangle?", "q4": "What shape is the red object?"}
    (entry,) = _predict(backend_server, [{"id": 1, "data": {"image": _image(scene), **questions}}], VQA)
    assert not LabelInterface(VQA).validate_prediction({"result": entry["result"]}, return_errors=True)
    assert _answers(entry) == {"answer1": ("q1", "2"), "answer2": ("q2", "red"), "answer3": ("q3", "yes"),
                               "answer4": ("q4", "square")}
    assert all(r["type"] == "textarea" for r in entry["result"])
    assert backend_server.metric("gemini_ls_gemini_requests_total", kind="text", outcome="ok") == 1  # all four at once


def test_a_task_without_some_questions_asks_only_those_it_has(backend_server):
    scene = _scene()
    data = {"image": _image(scene), "q1": "How many objects are there?", "q2": "  ", "q3": None}
    (entry,) = _predict(backend_server, [{"id": 7, "data": data}], VQA)
    assert _answers(entry) == {"answer1": ("q1", "4")}
    assert backend_server.metric("gemini_ls_gemini_requests_total", kind="text", outcome="ok") == 1


def test_a_one_megabyte_question_fails_its_own_task_only(backend_server):
    scene = _scene()
    good = {"id": 1, "data": {"image": _image(scene), "q1": "Is there a yellow circle?"}}
    huge = {"id": 2, "data": {"image": _image(scene), "q1": "Why? " * 200_000, "q2": "How many squares?"}}
    odd = {"id": 3, "data": {"image": _image(scene), "q1": {"not": "text"}}}
    first, second, third = _predict(backend_server, [good, huge, odd], VQA)
    assert _answers(first) == {"answer1": ("q1", "no")}
    assert "result" not in second and "1,000,000 characters" in second["error"], second
    assert f"{QUESTION_MAX_CHARS:,}" in second["error"] and "data['q1']" in second["error"]
    assert "result" not in third and "is a dict, not text" in third["error"], third
    assert backend_server.metric("gemini_ls_task_failures_total", reason="task_question") == 2
    # the bad tasks cost no Gemini call: only the good task's one question was asked
    assert backend_server.metric("gemini_ls_gemini_requests_total", kind="text", outcome="ok") == 1


def test_number_rating_and_taxonomy_on_the_whole_image(backend_server):
    scene = make_scene(640, 480, names=["red square", "blue circle", "blue circle", "red square"], seed=5)
    (entry,) = _predict(backend_server, [{"id": 1, "data": {"image": _image(scene)}}], WHOLE)
    assert not LabelInterface(WHOLE).validate_prediction({"result": entry["result"]}, return_errors=True)
    by_name = {r["from_name"]: r for r in entry["result"]}
    assert by_name["circles"]["type"] == "number" and by_name["circles"]["value"] == {"number": 2}
    assert by_name["clutter"]["type"] == "rating" and by_name["clutter"]["value"] == {"rating": 4}
    taxonomy = by_name["kind"]
    assert taxonomy["type"] == "taxonomy" and all(r["to_name"] == "image" for r in entry["result"])
    # every node the image shows, as its path from the root; no triangle, nothing green
    assert sorted(taxonomy["value"]["taxonomy"]) == [["Colours", "Blue"], ["Colours", "Red"], ["Shapes", "Circle"], ["Shapes", "Square"]]


@pytest.mark.parametrize("bounds, wanted", [('min="0" max="1"', None), ('min="0" max="9"', 2)])
def test_a_number_outside_the_controls_range_is_dropped_not_clamped(backend_server, bounds, wanted):
    scene = _scene()
    label_config = config(f'<Number name="n" toName="image" {bounds} model_prompt="How many blue circles?"/>')
    (entry,) = _predict(backend_server, [{"id": 1, "data": {"image": _image(scene)}}], label_config)
    numbers = [r["value"]["number"] for r in entry["result"]]
    assert numbers == ([] if wanted is None else [wanted])
    assert backend_server.metric("gemini_ls_items_dropped_total", reason="out_of_range") == (1 if wanted is None else 0)
