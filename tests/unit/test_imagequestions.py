"""Parsing the controls that ask one question about the whole image (imagequestions.py through
labelconfig.parse_label_config), the plans they get and the question read per task (taskquestions.py)."""

from __future__ import annotations

import pytest

from gemini_ls.detections import RequestKind
from gemini_ls.imagequestions import TAXONOMY_MAX_OPTIONS, Scale, TextQuestion, taxonomy_paths
from gemini_ls.labelconfig import LabelConfigError, parse_label_config
from gemini_ls.modelversion import label_set_digest
from gemini_ls.plan import plan_requests
from gemini_ls.taskquestions import QUESTION_MAX_CHARS, QuestionError, asked, unasked
from tests.helpers import config

# Label Studio 1.23.2's visual-question-answering template, as shipped (tests/e2e reads the installed one)
VQA = """<View>
  <Image name="image" value="$image"/>
  <Labels name="aspect" toName="q1"><Label value="counting" background="#E74C3C"/></Labels>
  <Header value="Please answer these questions:"/>
  <View><Header value="Q1:"/><Text name="q1" value="$q1"/><Header value="A1:"/>
    <TextArea name="answer1" toName="q1" rows="1" maxSubmissions="1"/></View>
  <View><Header value="Q2:"/><Text name="q2" value="$q2"/><Header value="A2:"/>
    <TextArea name="answer2" toName="q2" rows="1" maxSubmissions="1"/></View>
</View>"""
TAXONOMY = ('<Taxonomy name="kind" toName="image" {attrs}><Choice value="Animal"><Choice value="Cat" hint="a small cat"/>'
            '<Choice value="Dog"/></Choice><Choice value="Plant"/></Taxonomy>')


def test_the_vqa_template_is_one_textarea_per_question_asked_about_the_image():
    spec = parse_label_config(VQA)
    assert [c.name for c in spec.controls] == ["answer1", "answer2"]
    for control, text in zip(spec.controls, ("q1", "q2")):
        assert control.kind is RequestKind.TEXT and control.to_names == ("image",)
        assert control.question == TextQuestion(text_name=text, value_key=text)
    assert "aspect" in spec.ignored_controls  # span labels on the question text: not an image control
    (plan,) = plan_requests(spec)  # the questions share one request: the image is sent once
    assert (plan.kind, plan.image_names, plan.question, plan.asked_questions) == (RequestKind.TEXT, ("image",), None, ())
    assert [c.name for c in plan.controls] == ["answer1", "answer2"]


def test_questions_with_different_guidance_or_images_are_asked_apart():
    spec = parse_label_config(VQA.replace('name="answer2"', 'name="answer2" model_prompt="Answer in French."'))
    assert [[c.name for c in p.controls] for p in plan_requests(spec)] == [["answer1"], ["answer2"]]


def test_a_textarea_on_a_text_without_an_image_is_still_refused():
    with pytest.raises(LabelConfigError):
        parse_label_config('<View><Text name="q" value="$q"/><TextArea name="a" toName="q"/></View>')


def test_a_text_holding_a_url_or_a_constant_is_not_a_question():
    spec = parse_label_config(config('<Text name="u" value="$doc" valueType="url"/><TextArea name="a" toName="u"/>',
                                     '<Text name="c" value="fixed"/><TextArea name="b" toName="c"/>',
                                     '<Choices name="k" toName="image"><Choice value="A"/></Choices>'))
    assert [c.name for c in spec.controls] == ["k"] and {"a", "b"} <= set(spec.ignored_controls)


def test_a_caption_textarea_keeps_no_question():
    spec = parse_label_config(config('<TextArea name="caption" toName="image"/>'))
    assert spec.controls[0].question is None


def test_number_and_rating_ask_their_question_within_their_bounds():
    spec = parse_label_config(config(
        '<Number name="people_count" toName="image" min="0" max="50"/>',
        '<Number name="area" toName="image" hint="What share of the image is sky, in percent?" min="x"/>',
        '<Rating name="quality" toName="image" maxRating="10" model_prompt="How sharp is the photo?"/>',
        '<Rating name="stars" toName="image"/>',
    ))
    by_name = {c.name: c for c in spec.controls}
    assert all(c.kind is RequestKind.NUMBER and c.to_names == ("image",) for c in spec.controls)
    assert by_name["people_count"].scale == Scale(0.0, 50.0) and by_name["people_count"].settings.prompt == "people count"
    assert by_name["area"].scale == Scale(None, None)  # an unreadable bound is open, as in the editor
    assert by_name["area"].settings.prompt == "What share of the image is sky, in percent?"
    assert by_name["quality"].scale == Scale(1.0, 10.0, whole=True) and by_name["quality"].settings.prompt == "How sharp is the photo?"
    assert by_name["stars"].scale == Scale(1.0, 5.0, whole=True)
    assert [p.kind for p in plan_requests(spec)] == [RequestKind.NUMBER] * 4


def test_scale_accepts_only_values_in_range_and_whole_stars():
    assert Scale(0, 10).accepts(10) and not Scale(0, 10).accepts(10.5) and not Scale(0, 10).accepts(-1)
    assert Scale(1, 5, whole=True).accepts(4.0) and not Scale(1, 5, whole=True).accepts(3.5)
    assert Scale(None, None).accepts(-1e9) and not Scale(None, None).accepts(float("nan"))
    assert Scale(1, 5).describe() == " from 1 to 5" and Scale(0, None).describe() == " of at least 0"


@pytest.mark.parametrize("attrs, values, multiple", [
    ("", ["Animal", "Animal / Cat", "Animal / Dog", "Plant"], True),
    ('leafsOnly="true" maxUsages="1"', ["Animal / Cat", "Animal / Dog", "Plant"], False),
])
def test_a_taxonomy_offers_each_node_as_its_path(attrs, values, multiple):
    spec = parse_label_config(config(TAXONOMY.format(attrs=attrs)))
    (control,) = spec.controls
    assert control.kind is RequestKind.CHOICE and control.multiple is multiple
    assert [label.value for label in control.labels] == values
    cat = next(label for label in control.labels if label.value == "Animal / Cat")
    assert cat.path == ("Animal", "Cat") and cat.hint == "a small cat"


def test_a_taxonomy_from_an_api_or_too_big_is_logged_not_filled():
    big = "".join(f'<Choice value="n{i}"/>' for i in range(TAXONOMY_MAX_OPTIONS + 1))
    spec = parse_label_config(config(
        '<Taxonomy name="remote" toName="image" apiUrl="https://example.com/tree"/>',
        f'<Taxonomy name="big" toName="image">{big}</Taxonomy>',
        '<Choices name="c" toName="image"><Choice value="A"/></Choices>',
    ))
    reasons = dict(r.split(" ", 1) for r in spec.ignored_reasons)
    assert "apiUrl" in reasons["remote"] and f"above the {TAXONOMY_MAX_OPTIONS}" in reasons["big"]
    assert taxonomy_paths("<View", "x") == ()  # not XML: nothing


def test_the_model_version_holds_across_tasks_and_moves_with_the_question_binding():
    spec = parse_label_config(VQA)
    other = parse_label_config(VQA.replace('toName="q2"', 'toName="q1"'))
    assert label_set_digest(spec) == label_set_digest(parse_label_config(VQA))
    assert label_set_digest(spec) != label_set_digest(other)


def _plans():
    return plan_requests(parse_label_config(VQA))


def test_the_questions_are_read_from_each_task():
    (plan,) = _plans()
    task = {"id": 1, "data": {"image": "x", "q1": "  What colour\n is the car? ", "q2": "How many?"}}
    assert unasked((plan,), task) == frozenset()
    sent = asked(plan, task)
    assert sent.asked_questions == (("answer1", "What colour is the car?"), ("answer2", "How many?"))
    assert plan.asked_questions == () and len(plan.controls) == 2  # the project's plan is untouched


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_question_the_task_does_not_have_is_not_asked(value):
    (plan,) = _plans()
    sent = asked(plan, {"data": {"q1": "Why?", "q2": value}})
    assert sent.asked_questions == (("answer1", "Why?"),) and [c.name for c in sent.controls] == ["answer1"]
    assert unasked((plan,), {"data": {"q1": "Why?"}}) == frozenset()
    assert unasked((plan,), {"data": {"q1": value}}) == {0}  # no question at all: no request
    assert unasked((plan,), {"data": "not a mapping"}) == {0}


@pytest.mark.parametrize("value, words", [
    ("x" * (QUESTION_MAX_CHARS + 1), "4,001 characters, above the 4,000"),
    (42, "is a int, not text"),
    (["a"], "is a list, not text"),
])
def test_a_question_that_cannot_be_asked_says_why(value, words):
    with pytest.raises(QuestionError, match=words) as caught:
        asked(_plans()[0], {"data": {"q1": value, "q2": "fine"}})
    assert "data['q1']" in str(caught.value) and "answer1" in str(caught.value)


def test_a_question_at_the_cap_is_asked():
    sent = asked(_plans()[0], {"data": {"q1": "y" * QUESTION_MAX_CHARS}})
    assert sent.asked_questions == (("answer1", "y" * QUESTION_MAX_CHARS),)
