"""Number, Rating, Taxonomy and a VQA TextArea as Label Studio results, validated by Label Studio's
own `LabelInterface`, and read back (few-shot)."""

from __future__ import annotations

from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.detections import ImageMeta, ParsedAnswer
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.regions import REGISTRY, answer_from_results, convert_for

CONFIG = """<View><Image name="image" value="$image"/><Text name="q1" value="$q1"/>
  <TextArea name="answer1" toName="q1"/>
  <Number name="count" toName="image" min="0" max="9"/>
  <Rating name="stars" toName="image" maxRating="4"/>
  <Taxonomy name="kind" toName="image"><Choice value="Animal"><Choice value="Cat"/><Choice value="Dog"/></Choice>
    <Choice value="Plant"/></Taxonomy>
</View>"""
SPEC = parse_label_config(CONFIG)
IMAGES = {"image": ImageMeta("image", 640, 480)}


def _control(name):
    return next(c for c in SPEC.controls if c.name == name)


def _results(name, answer):
    return list(convert_for(_control(name), IMAGES, answer).results)


def test_each_result_has_label_studios_shape_and_validates():
    results = [
        *_results("answer1", ParsedAnswer(answers=(("other", "no"), ("answer1", "two cats")))),
        *_results("count", ParsedAnswer(number=3.0)),
        *_results("stars", ParsedAnswer(number=4.0)),
        *_results("kind", ParsedAnswer(choices=("Animal / Cat", "Plant", "Nonsense"))),
    ]
    by_name = {r["from_name"]: r for r in results}
    assert by_name["answer1"]["to_name"] == "q1" and by_name["answer1"]["value"] == {"text": ["two cats"]}
    assert by_name["count"]["value"] == {"number": 3} and by_name["count"]["type"] == "number"
    assert by_name["stars"]["value"] == {"rating": 4} and by_name["stars"]["type"] == "rating"
    assert by_name["kind"]["value"] == {"taxonomy": [["Animal", "Cat"], ["Plant"]]} and by_name["kind"]["type"] == "taxonomy"
    assert all(r["to_name"] == "image" for r in results if r["from_name"] != "answer1")
    assert LabelInterface(CONFIG).validate_prediction({"result": results}, return_errors=True) == []


def test_no_answer_gives_no_result_and_a_fraction_stays_a_fraction():
    assert _results("count", ParsedAnswer()) == [] and _results("kind", ParsedAnswer(choices=("Nope",))) == []
    assert _results("answer1", ParsedAnswer(text="a caption is no answer to q1")) == []
    assert _results("count", ParsedAnswer(number=2.5))[0]["value"] == {"number": 2.5}


def test_results_read_back_as_the_answer_they_stand_for():
    number = answer_from_results(_results("count", ParsedAnswer(number=3.0)), [_control("count")], ["image"])
    assert number.number == 3.0
    paths = answer_from_results(_results("kind", ParsedAnswer(choices=("Animal / Dog",))), [_control("kind")], ["image"])
    assert paths.choices == ("Animal / Dog",)
    assert REGISTRY["Taxonomy"].reverse({"value": {"taxonomy": "not a list"}}, 0) == ParsedAnswer()
    assert REGISTRY["Rating"].reverse({"value": {"rating": True}}, 0) == ParsedAnswer()
