"""Issue 23 items 1-2 through the HTTP server against the emulator (real SDK over HTTP): a <Labels>
with each bare shape tool, EllipseLabels, and per-region TextArea / Choices / Number / Rating asked
in the same Gemini call as the regions, every region checked against the scene it was drawn on."""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import COLOURS, encode_image, make_scene
from tests.helpers import colour_labels, config, data_uri
from tests.region_parts import object_of, regions_by_id, shape_of

SHAPES = "".join(f'<Choice value="{s.capitalize()}"/>' for s in ("square", "rectangle", "circle", "triangle"))
PER_REGION = (
    '<TextArea name="description" toName="image" perRegion="true" displayMode="region-list" placeholder="Describe the object"/>'
    f'<Choices name="shape" toName="image" perRegion="true" whenTagName="label" whenLabelValue="Red,Blue,Green">{SHAPES}</Choices>'
    '<Number name="corners" toName="image" perRegion="true" min="0" max="10" model_prompt="How many corners does it have?"/>'
    '<Rating name="size" toName="image" perRegion="true" maxRating="5"/>'
)
CORNERS = {"triangle": 3, "square": 4, "rectangle": 4, "circle": 0}
# tag -> (result type of the shape, minimum box IoU with its object)
SHAPE_TOOLS = {"Rectangle": ("rectangle", 0.9), "Ellipse": ("ellipse", 0.9), "Polygon": ("polygon", 0.8),
               "Brush": ("brush", 0.8), "KeyPoint": ("keypoint", 1.0)}


def _predict(backend, scene, label_config):
    task = {"id": 1, "data": {"image": data_uri(encode_image(scene.image, "png"), "image/png")}}
    resp = backend.post("/predict", {"tasks": [task], "label_config": label_config, "params": {"context": None}})
    assert resp.status_code == 200, resp.text
    (entry,) = resp.json()["results"]
    assert "result" in entry, entry
    assert not LabelInterface(label_config).validate_prediction({"result": entry["result"]}, return_errors=True)
    return entry["result"]


def _requests(backend) -> float:
    return sum(backend.metric("gemini_ls_gemini_requests_total", kind=k, outcome="ok") for k in ("boxes", "masks", "points"))


def _check_attributes(parts, obj, label, *, shape_asked: bool) -> None:
    assert parts["description"]["value"]["text"] == [f"{obj.colour} {obj.shape}"]
    assert parts["corners"]["value"]["number"] == CORNERS[obj.shape]
    assert 1 <= parts["size"]["value"]["rating"] <= 5
    if shape_asked and label in ("Red", "Blue", "Green"):
        assert parts["shape"]["value"]["choices"] == [obj.shape.capitalize()]
    else:  # whenLabelValue: asked only for the labels it applies to
        assert "shape" not in parts
    for name in ("description", "corners", "size", *(("shape",) if "shape" in parts else ())):
        assert parts[name]["to_name"] == "image"


@pytest.mark.parametrize("tool", list(SHAPE_TOOLS))
def test_labels_with_each_shape_tool_and_per_region_controls(backend_server, tool):
    scene = make_scene(640, 480, 6, seed=23, background="noisy", names=[f"{c} {s}" for c, s in zip(
        COLOURS, ("square", "circle", "triangle", "rectangle", "square", "circle"))])
    label_config = config(f'<Labels name="label" toName="image">{colour_labels()}</Labels>',
                          f'<{tool} name="shape_tool" toName="image"/>', PER_REGION)
    before = _requests(backend_server)
    result = _predict(backend_server, scene, label_config)
    assert _requests(backend_server) - before == 1  # regions, labels and attributes: ONE call
    shape_type, min_iou = SHAPE_TOOLS[tool]
    regions = regions_by_id(result)
    found = set()
    for parts in regions.values():
        shape = shape_of(parts)
        assert shape["type"] == shape_type and shape["from_name"] == "shape_tool"
        labels = parts["label"]
        assert labels["type"] == "labels" and labels["value"]["labels"]
        # the labels result carries the region's geometry (the editor joins them by id)
        assert {k: v for k, v in labels["value"].items() if k != "labels"} == shape["value"]
        obj, iou = object_of(shape, scene)
        assert iou >= min_iou, (tool, iou)
        label = labels["value"]["labels"][0]
        assert label == obj.colour.capitalize()
        _check_attributes(parts, obj, label, shape_asked=True)
        found.add(obj.box)
    if tool != "Brush":  # a brush region per object too, unless two objects of one colour merge
        assert len(found) == len(scene.objects)


def test_labelled_controls_get_per_region_answers_and_ellipses(backend_server):
    scene = make_scene(800, 600, 5, seed=5, background="plain")
    label_config = config(f'<EllipseLabels name="ell" toName="image">{colour_labels()}</EllipseLabels>', PER_REGION)
    result = _predict(backend_server, scene, label_config)
    regions = regions_by_id(result)
    assert len(regions) == len(scene.objects)
    for parts in regions.values():
        shape = parts["ell"]
        assert shape["type"] == "ellipselabels"
        obj, iou = object_of(shape, scene)
        assert iou >= 0.9 and shape["value"]["ellipselabels"] == [obj.colour.capitalize()]
        # whenTagName="label" names no control of this config: the shape question is never asked
        _check_attributes(parts, obj, obj.colour.capitalize(), shape_asked=False)


def test_ocr_template_shape_draws_one_shape_per_region(backend_server):
    """The OCR template's Rectangle + Polygon for one <Labels>: each object is one region, drawn by
    the first tool (a line predicted as both would be two regions), with its transcription."""
    scene = make_scene(640, 480, 4, seed=9, background="plain")
    label_config = config(
        f'<Labels name="label" toName="image">{colour_labels()}</Labels>',
        '<Rectangle name="bbox" toName="image" strokeWidth="3"/><Polygon name="poly" toName="image" strokeWidth="3"/>',
        '<TextArea name="transcription" toName="image" editable="true" perRegion="true" required="true" '
        'maxSubmissions="1" rows="5" placeholder="Recognized Text" displayMode="region-list"/>',
    )
    result = _predict(backend_server, scene, label_config)
    regions = regions_by_id(result)
    assert len(regions) == len(scene.objects)
    for parts in regions.values():
        assert set(parts) == {"bbox", "label", "transcription"}
        obj, iou = object_of(parts["bbox"], scene)
        assert iou >= 0.9
        assert parts["transcription"]["value"]["text"] == [f"{obj.colour} {obj.shape}"]
        assert parts["transcription"]["value"]["x"] == parts["bbox"]["value"]["x"]
