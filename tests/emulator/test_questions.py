"""The emulator answers questions about a whole image from its pixels (emulator/questions.py), asked
the way the backend asks them (taskquestions.py, gemini/numbers.py, a Taxonomy's choice prompt),
over HTTP through the real google-genai SDK."""

from __future__ import annotations

import json

import pytest

from gemini_ls.detections import RequestKind
from gemini_ls.emulator.scenes import make_scene
from gemini_ls.gemini.numbers import number_prompt
from gemini_ls.gemini.prompts import choice_prompt
from gemini_ls.gemini.questions import questions_prompt
from gemini_ls.imagequestions import Scale
from gemini_ls.labelconfig import LabelSpec
from gemini_ls.plan import PlannedRequest

from .test_prompts import part_of, run

NAMES = ["red square", "blue circle", "blue circle", "green triangle", "yellow rectangle"]


def _ask(client, scene, question: str) -> str:
    plan = PlannedRequest(RequestKind.TEXT, ("image",), (), (), 1, asked_questions=(("a1", question),))
    (item,) = json.loads(run(client, [part_of(scene)], questions_prompt(plan)))
    assert item["question"] == "a1"
    return item["answer"]


def test_several_questions_are_answered_in_one_reply(genai_client):
    scene = make_scene(640, 480, names=NAMES, seed=21)
    asked = (("answer1", "How many circles are there?"), ("answer2", "Is there a red square?"), ("x", "What colour is the triangle?"))
    plan = PlannedRequest(RequestKind.TEXT, ("image",), (), (), 3, asked_questions=asked)
    reply = json.loads(run(genai_client, [part_of(scene)], questions_prompt(plan)))
    assert reply == [{"question": "answer1", "answer": "2"}, {"question": "answer2", "answer": "yes"},
                     {"question": "x", "answer": "green"}]


@pytest.mark.parametrize("question, answer", [
    ("How many blue circles are there?", "2"),
    ("How many objects are there?", "5"),
    ("Count the triangles.", "1"),
    ("What colour is the square?", "red"),
    ("What color is the rectangle?", "yellow"),
    ("Which colour are the circles?", "blue"),
    ("What shape is the green object?", "triangle"),
    ("Is there a yellow rectangle?", "yes"),
    ("Are there any purple circles?", "no"),
])
def test_questions_are_answered_from_the_pixels(genai_client, question, answer):
    scene = make_scene(640, 480, names=NAMES, seed=21)
    assert _ask(genai_client, scene, question) == answer


def test_a_question_it_does_not_understand_gets_the_caption(genai_client):
    scene = make_scene(320, 240, names=["red square"], seed=3)
    assert _ask(genai_client, scene, "Why is it here?") == "A red square on a white background."


def test_a_number_request_counts_what_it_names_or_rates_within_the_range(genai_client):
    scene = make_scene(640, 480, names=NAMES, seed=21)
    count = json.loads(run(genai_client, [part_of(scene)], number_prompt("How many blue circles?", Scale(0, 10))))
    everything = json.loads(run(genai_client, [part_of(scene)], number_prompt("objects", None)))
    rating = json.loads(run(genai_client, [part_of(scene)], number_prompt("clutter", Scale(1, 3, whole=True))))
    assert (count, everything, rating) == ([2], [5], [3])  # the rating: 5 objects, capped at the top of 1..3


def test_a_taxonomy_is_chosen_by_the_colours_and_shapes_its_paths_name(genai_client):
    scene = make_scene(640, 480, names=["red square", "red circle"], seed=8)
    options = tuple(LabelSpec(v) for v in ("Shapes", "Shapes / Circle", "Shapes / Triangle", "Colours / Red", "Colours / Blue"))
    picked = json.loads(run(genai_client, [part_of(scene)], choice_prompt(options, multiple=True)))
    assert picked == ["Shapes / Circle", "Colours / Red"]
