"""Reading text (issue 23 item 3): `model_ocr_granularity` parsed per control, which controls read
text (the OCR template's per-region TextArea: lines by default), the unit each request asks for, and
the prompt sentence; configs that read no text keep their prompts and model_version."""

from __future__ import annotations

import pytest

from gemini_ls.detections import RequestKind
from gemini_ls.gemini.kinds import KINDS
from gemini_ls.labelconfig import LabelConfigError, parse_label_config
from gemini_ls.modelversion import _derived, label_set_digest
from gemini_ls.plan import plan_requests
from gemini_ls.textunits import TEXT_MAX_OBJECTS, parse_granularity, text_unit, unit_sentence, with_unit

OCR = """<View>
  <Image name="image" value="$ocr"/>
  <Labels name="label" toName="image"><Label value="Text"/><Label value="Handwriting"/></Labels>
  <Rectangle name="bbox" toName="image" {attr}/>
  <Polygon name="poly" toName="image"/>
  <TextArea name="transcription" toName="image" perRegion="true" placeholder="Recognized Text"/>
</View>"""
BOXES = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="rect" toName="image" {attr}><Label value="Car"/></RectangleLabels>
</View>"""


def _prompt(config: str):
    (plan,) = plan_requests(parse_label_config(config))
    return plan, KINDS[plan.kind].prompt(plan, 1)


@pytest.mark.parametrize("raw, unit", [(None, None), ("", None), ("line", "line"), (" Word ", "word"), ("BLOCK", "block")])
def test_granularity_is_one_of_three_units(raw, unit):
    assert parse_granularity(raw) == unit


def test_an_unknown_granularity_is_a_config_error_naming_the_units():
    with pytest.raises(ValueError, match="line, word, block"):
        parse_granularity("paragraph")
    with pytest.raises(LabelConfigError, match=r"model_ocr_granularity='letter': one of line, word, block"):
        parse_label_config(OCR.format(attr='model_ocr_granularity="letter"'))


def test_a_transcribed_region_reads_lines_by_default_and_a_set_granularity_wins():
    assert text_unit(None, [("TextArea", None)]) == "line"
    assert text_unit(None, [("TextArea", "Recognized Text")]) == "line"  # Label Studio's OCR template
    assert text_unit(None, [("TextArea", "Describe the object")]) is None  # a description, not a transcription
    assert text_unit(None, [("Choices", None), ("Number", None)]) is None
    assert text_unit("block", []) == "block"
    assert text_unit("word", [("TextArea", "Describe the object")]) == "word"


def test_the_ocr_template_asks_for_one_line_of_text_per_entry():
    plan, prompt = _prompt(OCR.format(attr=""))
    assert plan.kind is RequestKind.BOXES and plan.text_unit == "line"
    assert unit_sentence("line") in prompt.user
    assert "Where an entry is text, it is one line of text" in prompt.user


@pytest.mark.parametrize("unit, words", [("word", "one word"), ("block", "one block of text (a paragraph)")])
def test_the_prompt_asks_for_the_configured_unit(unit, words):
    plan, prompt = _prompt(OCR.format(attr=f'model_ocr_granularity="{unit}" model_prompt="Receipts only."'))
    assert plan.text_unit == unit
    assert f"Where an entry is text, it is {words}" in prompt.user
    # the unit first, then the control's own model_prompt
    assert prompt.user.index("Where an entry is text") < prompt.user.index("Receipts only.")


def test_a_control_reading_no_text_keeps_its_prompt_and_model_version():
    plan, prompt = _prompt(BOXES.format(attr=""))
    assert plan.text_unit is None and "Where an entry is text" not in prompt.user
    assert with_unit(None, None) is None and with_unit("Cars only.", None) == "Cars only."
    plain = parse_label_config(BOXES.format(attr=""))
    assert label_set_digest(plain) == label_set_digest(parse_label_config(BOXES.format(attr='model_ocr_granularity=""')))
    # set explicitly, it is a setting of the control: the version moves (Label Studio re-asks)
    assert label_set_digest(plain) != label_set_digest(parse_label_config(BOXES.format(attr='model_ocr_granularity="word"')))


def test_an_explicit_granularity_makes_any_region_control_read_text():
    plan, prompt = _prompt(BOXES.format(attr='model_ocr_granularity="word"'))
    assert plan.text_unit == "word" and "Where an entry is text, it is one word" in prompt.user


def test_controls_reading_different_units_are_not_merged():
    config = """<View>
      <Image name="image" value="$image"/>
      <RectangleLabels name="lines" toName="image" model_ocr_granularity="line"><Label value="Text"/></RectangleLabels>
      <RectangleLabels name="words" toName="image" model_ocr_granularity="word"><Label value="Text"/></RectangleLabels>
    </View>"""
    plans = plan_requests(parse_label_config(config))
    assert sorted((p.controls[0].name, p.text_unit) for p in plans) == [("lines", "line"), ("words", "word")]


def test_a_control_reading_text_names_its_unit_in_model_version():
    """Its prompt names the unit (even the default, lines), so its model_version does too."""
    ocr = parse_label_config(OCR.format(attr=""))
    (bbox,) = [c for c in ocr.controls if c.name == "bbox"]
    assert _derived(bbox)["text_unit"] == "line"
    words = parse_label_config(OCR.format(attr='model_ocr_granularity="word"'))
    assert label_set_digest(ocr) != label_set_digest(words)
    (rect,) = parse_label_config(BOXES.format(attr="")).controls
    assert "text_unit" not in _derived(rect)


def test_a_control_reading_text_has_room_for_a_page_of_lines_unless_its_config_says_otherwise():
    """MODEL_MAX_OBJECTS' 25 would cut a 30-line page as the OCR template ships (it sets no limit)."""
    (ocr,) = [c for c in parse_label_config(OCR.format(attr='')).controls if c.attributes]
    assert ocr.settings.max_objects == TEXT_MAX_OBJECTS["line"] == 100
    words = parse_label_config(BOXES.format(attr='model_ocr_granularity="word"'))
    assert words.controls[0].settings.max_objects == TEXT_MAX_OBJECTS["word"]
    capped = parse_label_config(OCR.format(attr='model_max_objects="12"'))
    assert [c.settings.max_objects for c in capped.controls if c.attributes] == [12]
    assert parse_label_config(BOXES.format(attr='')).controls[0].settings.max_objects == 25  # reads no text: the default
