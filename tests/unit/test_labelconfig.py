"""Label config parsing: images, supported controls, hints, model_* attributes, clear errors."""

import pytest

from gemini_ls.detections import RequestKind
from gemini_ls.labelconfig import Defaults, LabelConfigError, parse_label_config
from gemini_ls.modelversion import model_version

FULL = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="rect" toName="image" model_score_threshold="0.4" model_max_objects="7">
    <Label value="Cat" hint="red square"/><Label value="Dog"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image" model_mask_threshold="100"><Label value="Cat"/></BrushLabels>
  <PolygonLabels name="poly" toName="image" model_polygon_tolerance="2.5" model_min_area="30"><Label value="Cat"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="Cat"/></KeyPointLabels>
  <Choices name="cls" toName="image" choice="multiple"><Choice value="Red" hint="mostly red"/><Choice value="Blue"/></Choices>
  <TextArea name="cap" toName="image" model_prompt="Caption it."/>
  <Text name="t" value="$text"/><Labels name="ner" toName="t"><Label value="X"/></Labels>
</View>"""


def test_full_config_is_parsed_into_specs():
    spec = parse_label_config(FULL)
    assert [i.name for i in spec.images] == ["image"] and spec.images[0].value_key == "image"
    by_name = {c.name: c for c in spec.controls}
    assert set(by_name) == {"rect", "brush", "poly", "kp", "cls", "cap"}
    assert spec.ignored_controls == ("ner",)
    rect = by_name["rect"]
    assert rect.kind is RequestKind.BOXES and rect.result_type == "rectanglelabels"
    assert rect.labels[0].hint == "red square" and rect.labels[0].description == "red square"
    assert rect.labels[1].hint is None and rect.labels[1].description == "Dog"
    assert rect.settings.score_threshold == 0.4 and rect.settings.max_objects == 7
    assert by_name["brush"].settings.mask_threshold == 100
    assert by_name["poly"].settings.polygon_tolerance == 2.5 and by_name["poly"].settings.min_area == 30
    assert by_name["cls"].multiple is True and by_name["cls"].labels[0].hint == "mostly red"
    assert by_name["cap"].settings.prompt == "Caption it." and by_name["cap"].kind is RequestKind.TEXT


def test_env_defaults_apply_when_attributes_are_absent():
    spec = parse_label_config(FULL, Defaults(score_threshold=0.2, max_objects=9))
    kp = {c.name: c for c in spec.controls}["kp"]
    assert kp.settings.score_threshold == 0.2 and kp.settings.max_objects == 9


@pytest.mark.parametrize(
    "config, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("<View><Image name='i' value='$i'", "not valid XML"),
        ("<View><Text name='t' value='$t'/><Labels name='l' toName='t'><Label value='A'/></Labels></View>", "no <Image>"),
        ("<View><Image name='i' value='$i'/></View>", "no image control"),
        ("<View><Image name='i' value='$i'/><RectangleLabels name='r' toName='i' model_score_threshold='abc'>"
         "<Label value='A'/></RectangleLabels></View>", "not a number"),
        ("<View><Image name='i' value='$i'/><RectangleLabels name='r' toName='i' model_score_threshold='7'>"
         "<Label value='A'/></RectangleLabels></View>", "outside"),
    ],
)
def test_bad_configs_give_clear_errors(config, message):
    with pytest.raises(LabelConfigError, match=message):
        parse_label_config(config)


def test_model_version_moves_with_model_labels_and_settings_only():
    spec = parse_label_config(FULL)
    v1 = model_version("gemini-2.5-flash", prompt_version="p1", spec=spec)
    assert v1 == model_version("gemini-2.5-flash", prompt_version="p1", spec=parse_label_config(FULL))
    assert v1.startswith("gemini-ls-gemini-2.5-flash-")
    assert model_version("gemini-2.5-flash", prompt_version="p2", spec=spec) != v1
    assert model_version("gemini-3-flash", prompt_version="p1", spec=spec) != v1
    assert model_version("gemini-2.5-flash", prompt_version="p1", spec=parse_label_config(FULL.replace("red square", "red circle"))) != v1
    assert model_version("gemini-2.5-flash", prompt_version="p1", spec=parse_label_config(FULL.replace('"0.4"', '"0.5"'))) != v1
    assert model_version("gemini-2.5-flash", prompt_version="p1", spec=spec, emulated=True).endswith("-emulator")


def test_ignored_controls_say_which_and_why():
    spec = parse_label_config(
        '<View><Image name="image" value="$image"/><Text name="t" value="$text"/>'
        '<DateTime name="num" toName="image"/>'
        '<Labels name="ner" toName="t"><Label value="PER"/></Labels>'
        '<RectangleLabels name="on_text" toName="t"><Label value="X"/></RectangleLabels>'
        '<Choices name="empty" toName="image"></Choices>'
        '<RectangleLabels name="r" toName="image"><Label value="B"/></RectangleLabels></View>'
    )
    assert set(spec.ignored_controls) == {"num", "ner", "on_text", "empty"}
    by_name = {text.split(" ", 1)[0]: text for text in spec.ignored_reasons}
    assert set(by_name) == set(spec.ignored_controls)
    assert "<DateTime>" in by_name["num"] and "not a control type" in by_name["num"]
    assert "not bound to an <Image>" in by_name["ner"]
    assert "not bound to an <Image>" in by_name["on_text"]
    assert "no labels or choices" in by_name["empty"]
