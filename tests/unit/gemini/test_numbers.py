"""gemini/numbers.py: the prompt of a Number / Rating on the whole image and the parser of its answer."""

from __future__ import annotations

import pytest

from gemini_ls.gemini.numbers import number_prompt, parse_number
from gemini_ls.imagequestions import Scale

COUNT = Scale(0, 20)
STARS = Scale(1, 5, whole=True)


@pytest.mark.parametrize("text, scale, number", [
    ("[3]", COUNT, 3.0),
    ("3", COUNT, 3.0),
    ('{"count": 7}', COUNT, 7.0),
    ('```json\n[2.5]\n```', COUNT, 2.5),
    ('["4"]', STARS, 4.0),
    ("[4.0]", STARS, 4.0),
    ("There are 12 circles in the image.", COUNT, 12.0),
    ("[-3]", Scale(None, None), -3.0),
])
def test_the_number_is_read_from_every_shape_of_answer(text, scale, number):
    answer = parse_number(text, scale)
    assert answer.number == number and not answer.dropped


@pytest.mark.parametrize("text, scale", [("[21]", COUNT), ("[0]", STARS), ("[3.5]", STARS), ("[-1]", COUNT)])
def test_an_answer_outside_the_scale_is_dropped_not_clamped(text, scale):
    answer = parse_number(text, scale)
    assert answer.number is None and answer.dropped == {"out_of_range": 1}


def test_no_number_at_all_is_counted_and_an_empty_answer_is_nothing():
    assert parse_number("I cannot tell.", COUNT).dropped == {"no_json": 1}
    empty = parse_number("", COUNT, finish_reason="MAX_TOKENS")
    assert empty.number is None and empty.truncated and not empty.dropped


def test_the_prompt_names_the_question_the_range_and_the_shape():
    prompt = number_prompt("How many people?", Scale(0, 100))
    assert prompt.user.startswith("How many people?\n") and "one number from 0 to 100" in prompt.user
    assert "JSON list holding just that number" in prompt.user and prompt.json_mode
    assert prompt.response_schema == {"type": "ARRAY", "items": {"type": "NUMBER"}}
    assert "one whole number from 1 to 5" in number_prompt("quality", STARS).user
    assert "these images" in number_prompt(None, None, n_images=2).user
