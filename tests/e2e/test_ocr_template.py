"""Label Studio's optical-character-recognition template (read from the installed package), with a
per-region Choices added beside its per-region TextArea: created in the real Label Studio 1.23.2,
"Retrieve predictions", and every stored region checked against its scene (shape, label,
transcription, attribute), validated with Label Studio's `LabelInterface.validate_prediction`.

The emulator reads coloured shapes, not text (OCR by pixels is issue 23 item 7): the template's two
labels get `hint`s naming shapes, and the "transcription" it gives is the object's colour and shape.
"""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import box_iou

from ..region_parts import pixel_box, regions_by_id
from .helpers import backend_env, start_backend_process
from .project import make_project
from .templates import template_config

pytestmark = pytest.mark.e2e

TARGETS = {"Text": ("red", "square"), "Handwriting": ("blue", "circle")}
TRUNCATED = (
    '<Choices name="truncated" toName="image" perRegion="true" whenTagName="label" whenLabelValue="Text" '
    'model_prompt="Is the object cut off by the image border?"><Choice value="Yes"/><Choice value="No"/></Choices>'
)


def ocr_config() -> str:
    config = template_config("computer-vision", "optical-character-recognition")
    for label, (colour, shape) in TARGETS.items():
        config = config.replace(f'<Label value="{label}"', f'<Label value="{label}" hint="{colour} {shape}"', 1)
    assert config.count("hint=") == 2 and '<Rectangle name="bbox"' in config and 'perRegion="true"' in config, config
    return config.replace("</View>", TRUNCATED + "\n</View>")


def test_ocr_template_predictions_region_by_region(label_studio, gemini_emulator, cors_images):
    config = ocr_config().replace('value="$ocr"', 'value="$image"')  # make_project's tasks use $image
    backend = start_backend_process("ocr-template", backend_env(gemini_emulator.url, label_studio))
    try:
        project = make_project(label_studio, cors_images, backend.url, "e2e ocr template", config=config, broken=False)
        version = project.ml["model_version"]
        reply = label_studio.retrieve_predictions(project.id, list(project.tasks))
        assert reply["detail"] == f"Retrieved {len(project.tasks)} predictions", reply
        interface = LabelInterface(config)
        for task in project.good():
            (prediction,) = [p for p in label_studio.predictions(task.task_id) if p["model_version"] == version]
            result = prediction["result"]
            assert interface.validate_prediction({"result": result}, return_errors=True) == []
            scene = task.scene
            regions = regions_by_id(result)
            targets = [o for o in scene.objects if (o.colour, o.shape) in TARGETS.values()]
            assert len(regions) == len(targets), (len(regions), [o.name for o in scene.objects])
            matched = set()
            for parts in regions.values():
                bbox, label = parts["bbox"], parts["label"]
                assert bbox["type"] == "rectangle" and label["type"] == "labels"
                assert "poly" not in parts  # one shape per region: the first tool, the template's Rectangle
                (name,) = label["value"]["labels"]
                box = pixel_box(bbox)
                obj = max(targets, key=lambda o: box_iou(box, o.box))
                assert box_iou(box, obj.box) >= 0.9 and (obj.colour, obj.shape) == TARGETS[name]
                matched.add(obj.box)
                assert parts["transcription"]["type"] == "textarea"
                assert parts["transcription"]["value"]["text"] == [f"{obj.colour} {obj.shape}"]
                if name == "Text":  # whenLabelValue="Text": the scenes keep objects off the border
                    assert parts["truncated"]["value"]["choices"] == ["No"]
                else:
                    assert "truncated" not in parts
                for part in parts.values():  # each result carries the region's geometry
                    assert part["value"]["x"] == bbox["value"]["x"] and part["to_name"] == "image"
            assert len(matched) == len(targets)
    finally:
        backend.stop()
