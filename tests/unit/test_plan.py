"""Request planning: as few Gemini requests as the controls allow."""

from gemini_ls.detections import RequestKind
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.plan import plan_requests


def _spec(body: str):
    return parse_label_config(f"<View>{body}</View>")


def test_rectangles_alone_use_one_detection_request():
    spec = _spec('<Image name="image" value="$image"/>'
                 '<RectangleLabels name="r" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>')
    (plan,) = plan_requests(spec)
    assert plan.kind is RequestKind.BOXES
    assert plan.image_names == ("image",)
    assert [label.value for label in plan.labels] == ["Cat", "Dog"]


def test_rect_brush_polygon_with_one_label_set_share_one_segmentation_request():
    labels = '<Label value="Cat" hint="red square"/><Label value="Dog"/>'
    spec = _spec('<Image name="image" value="$image"/>'
                 f'<RectangleLabels name="r" toName="image">{labels}</RectangleLabels>'
                 f'<BrushLabels name="b" toName="image">{labels}</BrushLabels>'
                 f'<PolygonLabels name="p" toName="image" model_max_objects="40">{labels}</PolygonLabels>')
    (plan,) = plan_requests(spec)
    assert plan.kind is RequestKind.MASKS
    assert {c.name for c in plan.controls} == {"r", "b", "p"}
    assert {(lab.value, lab.hint) for lab in plan.labels} == {("Cat", "red square"), ("Dog", None)}
    assert plan.max_objects == 40


def test_controls_with_different_label_sets_are_not_merged():
    # "Purple" and "Circle" may be the same object: one request would name it once and lose it for one control
    spec = _spec('<Image name="image" value="$image"/>'
                 '<RectangleLabels name="r" toName="image"><Label value="Purple" hint="purple objects"/></RectangleLabels>'
                 '<BrushLabels name="b" toName="image"><Label value="Circle" hint="circles"/></BrushLabels>'
                 '<PolygonLabels name="p" toName="image"><Label value="Circle" hint="circles"/></PolygonLabels>')
    plans = plan_requests(spec)
    assert sorted((p.kind.value, tuple(c.name for c in p.controls)) for p in plans) == [
        ("boxes", ("r",)), ("masks", ("b", "p"))]


def test_points_choices_and_text_get_their_own_requests_and_multi_image_prompts():
    spec = _spec('<Image name="before" value="$a"/><Image name="after" value="$b"/>'
                 '<RectangleLabels name="r" toName="before,after"><Label value="Cat"/></RectangleLabels>'
                 '<KeyPointLabels name="k" toName="before"><Label value="Cat"/></KeyPointLabels>'
                 '<Choices name="c" toName="before,after"><Choice value="Same"/><Choice value="Different"/></Choices>'
                 '<TextArea name="t" toName="before,after" model_prompt="What differs?"/>')
    plans = plan_requests(spec)
    kinds = [(p.kind, p.image_names) for p in plans]
    assert (RequestKind.BOXES, ("before",)) in kinds
    assert (RequestKind.BOXES, ("after",)) in kinds
    assert (RequestKind.POINTS, ("before",)) in kinds
    assert (RequestKind.CHOICE, ("before", "after")) in kinds
    text = [p for p in plans if p.kind is RequestKind.TEXT][0]
    assert text.image_names == ("before", "after") and text.question == "What differs?"
    assert len(plans) == 5


def test_different_model_prompts_are_not_merged():
    spec = _spec('<Image name="image" value="$image"/>'
                 '<RectangleLabels name="r1" toName="image" model_prompt="Only large ones."><Label value="Cat"/></RectangleLabels>'
                 '<RectangleLabels name="r2" toName="image"><Label value="Dog"/></RectangleLabels>')
    plans = plan_requests(spec)
    assert len(plans) == 2
    assert {p.question for p in plans} == {"Only large ones.", None}
