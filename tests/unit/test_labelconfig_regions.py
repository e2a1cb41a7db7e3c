"""Parsing shape tools with <Labels>, EllipseLabels and per-region controls (issue 23 items 1-2),
and how they reach the plan, the prompt and model_version."""

from __future__ import annotations

from dataclasses import replace

from gemini_ls.detections import RequestKind
from gemini_ls.emulator.attributes import read_questions
from gemini_ls.gemini.kinds import KINDS
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.modelversion import model_version
from gemini_ls.plan import plan_requests

IMAGE = '<Image name="image" value="$ocr"/>'
LABELS = '<Labels name="label" toName="image"><Label value="Text"/><Label value="Handwriting" hint="handwritten text"/></Labels>'
TRANSCRIPTION = ('<TextArea name="transcription" toName="image" editable="true" perRegion="true" required="true" '
                 'maxSubmissions="1" rows="5" placeholder="Recognized Text" displayMode="region-list"/>')
LEGIBLE = ('<Choices name="legible" toName="image" perRegion="true" whenTagName="label" whenLabelValue="Handwriting">'
           '<Choice value="Legible" hint="easy to read"/><Choice value="Illegible"/></Choices>')
NUMBER = '<Number name="words" toName="image" perRegion="true" min="0" max="50"/>'
RATING = '<Rating name="quality" toName="image" perRegion="true" maxRating="3"/>'
OCR = f"<View>{IMAGE}{LABELS}<Rectangle name=\"bbox\" toName=\"image\"/><Polygon name=\"poly\" toName=\"image\"/>{TRANSCRIPTION}</View>"


def _view(*parts: str) -> str:
    return f"<View>{IMAGE}{''.join(parts)}</View>"


def test_ocr_template_is_one_rectangle_region_per_label_with_its_transcription():
    spec = parse_label_config(OCR)
    (bbox,) = spec.controls
    assert (bbox.name, bbox.tag, bbox.result_type, bbox.kind) == ("bbox", "Rectangle", "rectangle", RequestKind.BOXES)
    assert bbox.labels_from == "label" and [label.value for label in bbox.labels] == ["Text", "Handwriting"]
    assert bbox.labels[1].hint == "handwritten text"
    (transcription,) = bbox.attributes
    assert (transcription.tag, transcription.result_type, transcription.value_key) == ("TextArea", "textarea", "text")
    assert transcription.question == "Recognized Text" and transcription.display_mode == "region-list"
    # the Polygon draws nothing (the Rectangle comes first), and the log says so
    assert spec.ignored_controls == ("poly",)
    assert "drawn by 'bbox'" in spec.ignored_reasons[0] and "put this tool first" in spec.ignored_reasons[0]


def test_the_first_shape_tool_draws_and_each_bare_tool_has_its_result_type():
    for tag, result_type, kind in (("Polygon", "polygon", RequestKind.MASKS), ("Brush", "brush", RequestKind.MASKS),
                                   ("KeyPoint", "keypoint", RequestKind.POINTS), ("Ellipse", "ellipse", RequestKind.BOXES)):
        spec = parse_label_config(_view(LABELS, f'<{tag} name="tool" toName="image"/>', '<Rectangle name="bbox" toName="image"/>'))
        (control,) = spec.controls
        assert (control.tag, control.result_type, control.kind, control.labels_from) == (tag, result_type, kind, "label")
        assert spec.ignored_controls == ("bbox",)


def test_shape_tools_and_labels_without_each_other_are_ignored_with_a_reason():
    spec = parse_label_config(_view('<Rectangle name="bbox" toName="image"/>',
                                    '<RectangleLabels name="r" toName="image"><Label value="A"/></RectangleLabels>'))
    assert spec.ignored_controls == ("bbox",) and "no <Labels> on its image" in spec.ignored_reasons[0]
    spec = parse_label_config(_view(LABELS, '<RectangleLabels name="r" toName="image"><Label value="A"/></RectangleLabels>'))
    assert spec.ignored_controls == ("label",) and "no shape tool" in spec.ignored_reasons[0]


def test_ellipse_labels_is_a_labelled_control():
    (control,) = parse_label_config(_view('<EllipseLabels name="ell" toName="image"><Label value="A"/></EllipseLabels>')).controls
    assert (control.result_type, control.kind, control.labels_from) == ("ellipselabels", RequestKind.BOXES, None)


def test_per_region_controls_parse_with_their_conditions_and_bounds():
    spec = parse_label_config(_view(LABELS, '<Rectangle name="bbox" toName="image"/>', LEGIBLE, NUMBER, RATING))
    (bbox,) = spec.controls
    legible, words, quality = bbox.attributes
    assert legible.when_tag == "label" and legible.when_labels == ("Handwriting",)
    assert [o.value for o in legible.options] == ["Legible", "Illegible"] and not legible.multiple
    assert legible.applies(bbox, "Handwriting") and not legible.applies(bbox, "Text")
    assert legible.labels_for(bbox) == ("Handwriting",)
    assert (words.minimum, words.maximum, words.labels_for(bbox)) == (0.0, 50.0, None)
    assert (quality.minimum, quality.maximum, quality.result_type) == (1.0, 3.0, "rating")
    # a per-region TextArea is no whole-image caption
    assert all(c.kind is not RequestKind.TEXT for c in spec.controls)


def test_per_region_controls_that_apply_to_no_region_are_ignored():
    other_tag = LEGIBLE.replace('whenTagName="label"', 'whenTagName="elsewhere"')
    spec = parse_label_config(_view('<RectangleLabels name="r" toName="image"><Label value="A"/></RectangleLabels>', other_tag,
                                    '<Choices name="empty" toName="image" perRegion="true"></Choices>',
                                    '<Taxonomy name="tax" toName="image" perRegion="true"><Choice value="x"/></Taxonomy>'))
    assert spec.controls[0].attributes == ()
    reasons = {text.split(" ", 1)[0]: text for text in spec.ignored_reasons}
    assert set(reasons) == {"legible", "empty", "tax"}
    assert "whenTagName='elsewhere'" in reasons["legible"]
    assert "no labels or choices" in reasons["empty"] and "not a per-region control" in reasons["tax"]


def test_per_region_controls_go_into_the_regions_request_and_prompt():
    spec = parse_label_config(_view(LABELS, '<Rectangle name="bbox" toName="image"/>', TRANSCRIPTION, LEGIBLE, NUMBER, RATING))
    (plan,) = plan_requests(spec)
    assert plan.kind is RequestKind.BOXES
    assert [(a.name, labels) for a, labels in plan.attributes] == [
        ("transcription", None), ("legible", ("Handwriting",)), ("words", None), ("quality", None)]
    prompt = KINDS[plan.kind].prompt(plan, 1)
    assert '"attributes"' in prompt.user
    assert ('- "legible" (one of "Legible", "Illegible"): "Legible" means easy to read; '
            'only for entries labelled "Handwriting"') in prompt.user
    assert '- "words" (number from 0 to 50)' in prompt.user and '- "quality" (rating, a whole number from 1 to 3)' in prompt.user
    schema = prompt.response_schema["items"]["properties"]["attributes"]["properties"]
    assert schema == {"transcription": {"type": "STRING"}, "legible": {"type": "STRING", "enum": ["Legible", "Illegible"]},
                      "words": {"type": "NUMBER"}, "quality": {"type": "INTEGER"}}
    # the emulator reads back what the prompt asks
    questions = {q.name: q for q in read_questions(prompt.user)}
    assert questions["legible"].options == ("Legible", "Illegible") and questions["legible"].labels == ("Handwriting",)
    assert questions["transcription"].form == "text" and questions["transcription"].text == "Recognized Text"
    assert (questions["words"].low, questions["words"].high) == (0.0, 50.0) and questions["quality"].form == "rating"


def test_controls_asking_different_per_region_questions_are_not_merged():
    rect = '<RectangleLabels name="r" toName="image"><Label value="A"/></RectangleLabels>'
    poly = '<PolygonLabels name="p" toName="image"><Label value="A"/></PolygonLabels>'
    only_r = NUMBER.replace('perRegion="true"', 'perRegion="true" whenTagName="r"')
    assert len(plan_requests(parse_label_config(_view(rect, poly, NUMBER)))) == 1
    plans = plan_requests(parse_label_config(_view(rect, poly, only_r)))
    assert sorted((p.kind.value, len(p.attributes)) for p in plans) == [("boxes", 1), ("masks", 0)]


def test_model_version_moves_with_per_region_controls_and_labels_only():
    base = parse_label_config(OCR)
    v = model_version("gemini-2.5-flash", base, prompt_version="p1")
    assert v == model_version("gemini-2.5-flash", parse_label_config(OCR), prompt_version="p1")
    for changed in (OCR.replace("</View>", LEGIBLE + "</View>"), OCR.replace("Recognized Text", "The text"),
                    OCR.replace('name="label"', 'name="label2"')):
        assert model_version("gemini-2.5-flash", parse_label_config(changed), prompt_version="p1") != v
    # derived fields only enter the digest when a control has them: other configs keep their version
    rect = parse_label_config(_view('<RectangleLabels name="r" toName="image"><Label value="A"/></RectangleLabels>'))
    bare = replace(rect, controls=tuple(replace(c, attributes=(), labels_from=None) for c in rect.controls))
    assert model_version("m", rect, prompt_version="p1") == model_version("m", bare, prompt_version="p1")
