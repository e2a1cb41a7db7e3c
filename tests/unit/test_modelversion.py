"""model_version: the per-control settings enter the digest by reflection, and the digests of today's
settings stay what they were when the fields were listed by hand (a moved version re-predicts every
task of every project)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import pytest

from gemini_ls.labelconfig import ControlSettings, parse_label_config
from gemini_ls.modelversion import label_set_digest, model_version, model_version_for
from gemini_ls.review.learning import LearnedState
from gemini_ls.settings import Settings

FULL = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image" model_score_threshold="0.4" model_max_objects="7">
<Label value="Cat" hint="a small cat"/><Label value="Dog"/></RectangleLabels>
<BrushLabels name="brush" toName="image" model_prompt="only the big ones" model_name="gemini-2.5-pro" model_mask_name="gemini-2.5-flash">
<Label value="Cat"/></BrushLabels>
<Choices name="c" toName="image" choice="multiple"><Choice value="Indoor"/><Choice value="Outdoor"/></Choices></View>"""
POLYGON = ("""<View><Image name="image" value="$image"/><PolygonLabels name="p" toName="image" model_polygon_tolerance="2.5" """
           """model_min_area="40" model_mask_threshold="100"><Label value="Road"/></PolygonLabels></View>""")


def test_digests_of_todays_settings_are_unchanged():
    # computed by the hand-listed digest before it read ControlSettings' fields (commit c18dd66)
    assert label_set_digest(parse_label_config(FULL)) == "b751a615"
    assert label_set_digest(parse_label_config(POLYGON)) == "617d5d93"
    assert model_version("gemini-2.5-flash", parse_label_config(FULL), prompt_version="p7", mask_model="gemini-2.5-pro",
                         suffix="x y") == "gemini-ls-gemini-2.5-flash-masks-gemini-2.5-pro-p7-b751a615-x-y"


@pytest.mark.parametrize("name", [f.name for f in fields(ControlSettings)])
def test_every_per_control_setting_moves_the_digest(name):
    spec = parse_label_config(FULL)
    control = spec.controls[0]
    current = getattr(control.settings, name)
    other = {int: 3, float: 0.123, str: "changed"}.get(type(current), "changed")  # None (unset) -> a text
    changed = replace(spec, controls=(replace(control, settings=replace(control.settings, **{name: other})), *spec.controls[1:]))
    assert label_set_digest(changed) != label_set_digest(spec)


@dataclass(frozen=True)
class _WithNewSetting(ControlSettings):
    """ControlSettings as it would be with one more model_* attribute, which nobody listed anywhere."""

    model_temperature: float | None = None


def test_a_new_per_control_setting_moves_the_digest_without_being_listed():
    spec = parse_label_config(FULL)
    control = spec.controls[0]
    grown = _WithNewSetting(**{f.name: getattr(control.settings, f.name) for f in fields(ControlSettings)})
    with_new = replace(spec, controls=(replace(control, settings=grown), *spec.controls[1:]))
    assert label_set_digest(with_new) != label_set_digest(spec)
    set_new = replace(spec, controls=(replace(control, settings=replace(grown, model_temperature=0.2)), *spec.controls[1:]))
    assert label_set_digest(set_new) not in (label_set_digest(spec), label_set_digest(with_new))


def test_the_learned_tag_comes_from_the_effective_spec():
    settings = Settings()
    spec = parse_label_config(FULL)
    base = model_version_for(settings, spec, emulated=False)
    learned = LearnedState({"Dog": 0.5}, {"Dog": "Cat"})
    effective = learned.applied(spec)
    assert model_version_for(settings, effective, emulated=False) == f"{base}-{learned.tag()}"
    # the tuning itself is not a label config setting: only the learned tag moves the version
    assert label_set_digest(effective) == label_set_digest(spec)
    assert model_version_for(settings, LearnedState().applied(spec), emulated=False) == base
