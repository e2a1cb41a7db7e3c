"""Labels from the task (dynlabels.py, dynrefs.py, gemini/dynprompts.py): parsing Label Studio's
templates, the per-task label set, its bad inputs, the reference pictures and the prompt wording."""

from __future__ import annotations

import pytest

from gemini_ls.detections import Detection, RequestKind
from gemini_ls.dynlabels import DynamicLabelsError, is_phrase, one_per_phrase, reference_src, resolve_plan, task_labels
from gemini_ls.dynrefs import MAX_REFERENCE_IMAGES, REFERENCE_USES, with_references
from gemini_ls.gemini.kinds import prompt_for
from gemini_ls.images.errors import ImageError
from gemini_ls.images.prepare import PreparedImage
from gemini_ls.labelconfig import LabelSpec, parse_label_config
from gemini_ls.modelversion import model_version_for
from gemini_ls.plan import plan_requests
from gemini_ls.settings import Settings

INVENTORY = """<View><PolygonLabels name="objects" toName="image" value="$objects"/>
<Image name="image" value="$image"/></View>"""
GENOME = """<View><RectangleLabels name="regions" toName="image" value="$regions"/>
<RectangleLabels name="attributes" toName="image" value="$attributes"/>
<RectangleLabels name="relationships" toName="image" value="$relationships"/>
<Image name="image" value="$image"/></View>"""
MIXED = """<View><RectangleLabels name="rect" toName="image" value="$extra"><Label value="Car" hint="a car"/></RectangleLabels>
<Image name="image" value="$image"/></View>"""


def _plan(config: str, index: int = 0):
    return plan_requests(parse_label_config(config))[index]


def _prepared(name: str, digest: str) -> PreparedImage:
    return PreparedImage(name=name, data=b"x", mime_type="image/png", width=10, height=10, sent_width=10,
                         sent_height=10, sha256=digest)


def test_the_templates_parse_with_labels_read_per_task():
    inventory = parse_label_config(INVENTORY)
    (control,) = inventory.controls
    assert control.labels_field == "objects" and control.labels == () and not inventory.ignored_controls
    genome = parse_label_config(GENOME)
    assert [c.labels_field for c in genome.controls] == ["regions", "attributes", "relationships"]
    # three label sets: three requests, never merged into one
    assert len(plan_requests(genome)) == 3
    same = GENOME.replace("$attributes", "$regions").replace("$relationships", "$regions")
    assert len(plan_requests(parse_label_config(same))) == 1


def test_a_labels_control_drawn_by_a_shape_tool_reads_them_too():
    spec = parse_label_config('<View><Labels name="label" toName="image" value="$kinds"/><Rectangle name="box" '
                              'toName="image"/><Image name="image" value="$image"/></View>')
    (control,) = spec.controls
    assert control.tag == "Rectangle" and control.labels_from == "label" and control.labels_field == "kinds"


def test_model_version_covers_the_field_not_the_labels():
    settings = Settings.from_env({"GEMINI_API_KEY": "k"})
    version = model_version_for(settings, parse_label_config(INVENTORY), emulated=False)
    assert version == model_version_for(settings, parse_label_config(INVENTORY), emulated=False)
    assert version != model_version_for(settings, parse_label_config(INVENTORY.replace("$objects", "$products")),
                                        emulated=False)


def test_task_labels_follow_label_studio_static_first_then_the_entries():
    (control,) = parse_label_config(MIXED).controls
    data = {"extra": [{"value": "Bus", "hint": "a bus"}, {"value": "Car"}, {"html": "no value"}, "Van", {"value": 7},
                      {"value": "x" * 501}, {"value": "Cola", "html": "<img width='100' src='https://a/b.png'/>"}]}
    labels = task_labels(control, data, cap=200)
    assert labels == (LabelSpec("Car", "a car"), LabelSpec("Bus", "a bus"), LabelSpec("Cola", reference="https://a/b.png"))
    assert task_labels(control, {}, cap=200) == (LabelSpec("Car", "a car"),)  # no field: the static labels


@pytest.mark.parametrize(("data", "message"), [
    ({}, "the task has no data['objects']"),
    ({"objects": "CocaCola"}, "is str, not a list"),
    ({"objects": {"value": "CocaCola"}}, "is dict, not a list"),
    ({"objects": [{"value": str(i)} for i in range(10_000)]}, "holds 10,000 labels, above MAX_DYNAMIC_LABELS=200"),
])
def test_a_bad_field_is_a_clear_error(data, message):
    (control,) = parse_label_config(INVENTORY).controls
    with pytest.raises(DynamicLabelsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        task_labels(control, data, cap=200)
    assert len(task_labels(control, {"objects": [{"value": str(i)} for i in range(200)]}, cap=200)) == 200


@pytest.mark.parametrize(("html", "src"), [
    ("<img width='100' src='https://x/cola.png'/>", "https://x/cola.png"),
    ('<div><b>Cola</b><IMG SRC="/data/upload/1/cola.png?x=1&amp;y=2"></div>', "/data/upload/1/cola.png?x=1&y=2"),
    ("<b>no picture</b>", None),
    ("<img alt='no src'>", None),
    (None, None),
    (["<img src='a'>"], None),
])
def test_reference_src_is_the_first_img(html, src):
    assert reference_src(html) == src


def test_resolve_plan_sets_labels_and_phrases_per_task():
    plan = _plan(GENOME)
    phrases = resolve_plan(plan, {"regions": [{"value": "panda bear holding bamboo"}, {"value": "tree BEHIND bear"}]}, 200)
    assert [label.value for label in phrases.labels] == ["panda bear holding bamboo", "tree BEHIND bear"]
    assert phrases.controls[0].labels == phrases.labels and phrases.phrases
    classes = resolve_plan(plan, {"regions": [{"value": "panda"}, {"value": "tree BEHIND bear"}]}, 200)
    assert not classes.phrases  # one class name among them: detection as usual
    assert not resolve_plan(plan, {"regions": []}, 200).labels
    static = _plan(MIXED.replace(' value="$extra"', ""))
    assert resolve_plan(static, None, 200) is static
    with pytest.raises(DynamicLabelsError, match="no 'data' object"):
        resolve_plan(plan, None, 200)
    assert not is_phrase(LabelSpec("a b c", reference="https://x/y.png"))


def test_one_region_per_phrase_the_most_confident():
    a1 = Detection("a", "a", box=(0, 0, 10, 10), score=0.5)
    a2 = Detection("a", "a", box=(20, 20, 30, 30), score=0.9)
    b = Detection("b", "b", box=(0, 0, 5, 5), score=None)
    assert one_per_phrase((a1, b, a2)) == (b, a2)


def test_references_fetched_once_per_url_failures_asked_by_name():
    plan = resolve_plan(_plan(INVENTORY), {"objects": [
        {"value": "Cola", "html": "<img src='https://x/cola.png'>"},
        {"value": "Cola Zero", "html": "<img src='https://x/cola.png'>"},
        {"value": "Burn", "html": "<img src='http://127.0.0.1:6379/'>"},
        {"value": "Lime"},
    ]}, 200)
    calls: list[str] = []

    def prepare(url: str) -> PreparedImage:
        calls.append(url)
        if "6379" in url:
            raise ImageError("blocked_address", "the address 127.0.0.1 is private")
        return _prepared("ref", "cola")

    refs = with_references(plan, prepare, task_id=1)
    assert calls == ["https://x/cola.png", "http://127.0.0.1:6379/"]
    assert refs.plan.references == ("Cola", "Cola Zero") and len(refs.images) == 2
    assert refs.skipped == ("Burn: the address 127.0.0.1 is private",)
    assert refs.uses == {"cola": REFERENCE_USES}


def test_references_are_capped_per_request_and_only_for_regions():
    entries = [{"value": f"p{i}", "html": f"<img src='https://x/{i}.png'>"} for i in range(MAX_REFERENCE_IMAGES + 3)]
    plan = resolve_plan(_plan(INVENTORY), {"objects": entries}, 200)
    refs = with_references(plan, lambda url: _prepared(url, url))
    assert len(refs.images) == MAX_REFERENCE_IMAGES and len(refs.skipped) == 3
    tried: list[str] = []

    def dead(url: str) -> PreparedImage:  # 19 dead links: 16 downloads tried, not 19 timeouts
        tried.append(url)
        raise ImageError("timeout", "took too long")

    refs = with_references(plan, dead)
    assert len(tried) == MAX_REFERENCE_IMAGES and refs.images == () and len(refs.skipped) == MAX_REFERENCE_IMAGES + 3
    choice = resolve_plan(_plan('<View><Choices name="c" toName="image" value="$opts"/><Image name="image" '
                                'value="$image"/></View>'), {"opts": entries[:2]}, 200)
    assert choice.kind is RequestKind.CHOICE and with_references(choice, lambda url: _prepared(url, url)).images == ()


def test_the_prompt_names_each_label_by_its_reference_image():
    plan = resolve_plan(_plan(INVENTORY), {"objects": [
        {"value": "Cola", "html": "<img src='https://x/c.png'>"}, {"value": "Lime", "hint": "green can"},
        {"value": "Burn", "hint": "black can", "html": "<img src='https://x/b.png'>"}]}, 200)
    refs = with_references(plan, lambda url: _prepared(url, url))
    prompt = prompt_for(refs.plan, 1 + len(refs.images))
    assert prompt.user.startswith("Image 1 is the image to search; images 2 to 3 are reference pictures")
    assert '- "Cola": the object shown in reference image 2' in prompt.user
    assert '- "Lime": green can' in prompt.user
    assert '- "Burn": black can; the object shown in reference image 3' in prompt.user
    assert "referring expression" not in prompt.user
    plain = prompt_for(plan, 1)  # the pictures could not be had: no lead, names only
    assert plain.user.startswith("Give the segmentation masks") and "reference image" not in plain.user


def test_the_prompt_asks_one_region_per_phrase():
    plan = resolve_plan(_plan(GENOME), {"regions": [{"value": "the red circle left of the blue square"}]}, 200)
    prompt = prompt_for(plan, 1)
    assert '- "the red circle left of the blue square"' in prompt.user
    assert "Each label above is a referring expression" in prompt.user and "exactly one entry per phrase" in prompt.user
