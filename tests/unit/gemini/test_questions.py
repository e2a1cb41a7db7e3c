"""gemini/questions.py: a task's questions about the image asked in one request, and its answer read
back per TextArea."""

from __future__ import annotations

import pytest

from gemini_ls.detections import RequestKind
from gemini_ls.gemini.kinds import prompt_for
from gemini_ls.gemini.questions import parse_answers, questions_prompt
from gemini_ls.plan import PlannedRequest

ASKED = (("answer1", "How many cats?"), ("answer2", 'What does the "sign" say?'))
PLAN = PlannedRequest(RequestKind.TEXT, ("image",), (), (), 2, question="Answer in French.", asked_questions=ASKED)


def test_the_prompt_lists_each_question_by_name_after_the_guidance():
    prompt = questions_prompt(PLAN)
    assert prompt.user.startswith("Answer in French.\nAnswer each question about the image briefly")
    assert '- "answer1": How many cats?\n- "answer2": What does the "sign" say?' in prompt.user
    assert prompt.json_mode and prompt.response_schema["items"]["properties"]["question"]["enum"] == ["answer1", "answer2"]
    assert prompt_for(PLAN, 1).user == prompt.user  # the TEXT kind asks questions when the plan has them
    assert "Caption" in prompt_for(PlannedRequest(RequestKind.TEXT, ("image",), (), (), 1), 1).user


@pytest.mark.parametrize("text, answers, dropped", [
    ('[{"question": "answer1", "answer": " two\\n cats "}, {"question": "answer2", "answer": "STOP"}]',
     (("answer1", "two cats"), ("answer2", "STOP")), {}),
    ('```json\n{"answer1": 2, "answer2": "stop"}\n```', (("answer1", "2"), ("answer2", "stop")), {}),
    ('[{"question": "answer9", "answer": "x"}, {"question": "answer1", "answer": ""}, "odd"]', (), {"not_an_object": 3}),
    ('[{"question": "answer1", "answer": "1"}, {"question": "answer1", "answer": "2"}]', (("answer1", "1"),), {"not_an_object": 1}),
    ("I am not sure.", (), {"no_json": 1}),
])
def test_each_answer_goes_to_its_question(text, answers, dropped):
    parsed = parse_answers(text, PLAN)
    assert parsed.answers == answers and dict(parsed.dropped) == dropped


def test_one_question_answered_in_prose_is_its_answer():
    one = PlannedRequest(RequestKind.TEXT, ("image",), (), (), 1, asked_questions=(("a", "Colour?"),))
    assert parse_answers('"Dark red."', one).answers == (("a", "Dark red."),)


def test_the_projects_plan_reads_back_its_questions_answers_by_control_name():
    """The Batch API parses a reply with the project's plan (no asked_questions): its question
    TextAreas' names are the names."""
    from gemini_ls.labelconfig import parse_label_config
    from gemini_ls.plan import plan_requests

    (plan,) = plan_requests(parse_label_config(
        '<View><Image name="image" value="$image"/><Text name="q1" value="$q1"/><TextArea name="a1" toName="q1"/></View>'))
    parsed = parse_answers('[{"question": "a1", "answer": "blue"}, {"question": "zz", "answer": "x"}]', plan)
    assert parsed.answers == (("a1", "blue"),) and dict(parsed.dropped) == {"not_an_object": 1}
