"""Label Studio's own computer-vision templates that this backend fills, as a table: the template,
the `hint`s that tell the emulator which coloured shapes each label or choice means (the only change
made to the installed config), and the checks of each stored result kind against the scene's ground
truth. Used by tests/e2e/test_templates_gallery.py."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import COLOURS, Scene, SceneObject, box_iou, encode_image, make_scene
from tests.helpers import brush_mask, polygon_mask, rect_pixels

from .project import SCENE_SPECS
from .templates import template_config

GROUP = "computer-vision"
# Two scenes per template, Label Studio's tasks: red-dominant with two red squares (JPEG), and
# blue-dominant with no red square at all (PNG), so a class absent from a scene is checked too.
SCENES = (SCENE_SPECS[1], SCENE_SPECS[2])
IOU = 0.5  # boxes, polygons and masks: the usual detection threshold
SHAPE_HINTS = ("red square", "blue circle")  # the emulator finds shapes by colour and form
CHOICE_HINTS = ("mostly red", "mostly blue", "mostly green")  # the emulator classifies by dominant colour


@dataclass(frozen=True)
class GalleryTemplate:
    name: str  # its folder under annotation_templates/computer-vision/
    key: str  # the task data key the template reads ($image, $img, $captioning)
    hints: tuple[tuple[str, str], ...]  # (label or choice value, hint)

    def config(self) -> str:
        """The installed template's config with a `hint` on each listed <Label>/<Choice>, nothing else."""
        config = template_config(GROUP, self.name)
        assert f'value="${self.key}"' in config, (self.name, self.key, config)
        for value, hint in self.hints:
            pattern = re.compile(rf'(<(?:Label|Choice) value="{re.escape(value)}")')
            config, n = pattern.subn(rf'\1 hint="{hint}"', config, count=1)
            assert n == 1, (self.name, value, config)
        return config

    def meanings(self) -> dict[str, str]:
        return dict(self.hints)


def _pairs(values: Sequence[str], hints: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(values, hints, strict=True))


TEMPLATES = (
    GalleryTemplate("object-detection-with-bounding-boxes", "image", _pairs(("Airplane", "Car"), SHAPE_HINTS)),
    GalleryTemplate("semantic-segmentation-with-masks", "image", _pairs(("Airplane", "Car"), SHAPE_HINTS)),
    GalleryTemplate("semantic-segmentation-with-polygons", "image", _pairs(("Airplane", "Car"), SHAPE_HINTS)),
    GalleryTemplate("keypoints", "img", _pairs(("Face", "Nose"), SHAPE_HINTS)),
    GalleryTemplate("image-classification", "image", _pairs(("Adult content", "Weapons", "Violence"), CHOICE_HINTS)),
    GalleryTemplate("image-captioning", "captioning", ()),
    GalleryTemplate(
        "medical-image-classification-with-bboxes",
        "image",
        _pairs(("Tumor",), SHAPE_HINTS[:1]) + _pairs(("Benign", "Malignant", "Normal"), CHOICE_HINTS),
    ),
)


def scene_files() -> list[tuple[Scene, bytes, str]]:
    out = []
    for (w, h), names, seed, fmt in SCENES:
        scene = make_scene(w, h, names=names, seed=seed)
        out.append((scene, encode_image(scene.image, fmt), fmt))
    return out


# ----------------------------------------------------------------------------------------------
# Checks: one stored prediction against its scene, result kind by result kind
# ----------------------------------------------------------------------------------------------


def _targets(meaning: str, scene: Scene) -> tuple[SceneObject, ...]:
    colour, shape = meaning.split()
    return scene.matching(colour, shape)


def _inside(point: tuple[float, float], obj: SceneObject) -> bool:
    x0, y0, x1, y1 = obj.box
    x, y = point
    if not (x0 <= x < x1 and y0 <= y < y1):
        return False
    return bool(obj.mask_crop[int(y) - y0, int(x) - x0])


def _mask_iou(region: Mapping, obj: SceneObject, scene: Scene) -> float:
    mask = brush_mask(region) if region["type"] == "brushlabels" else polygon_mask(region)
    truth = obj.full_mask(scene.width, scene.height)
    union = (mask | truth).sum()
    return float((mask & truth).sum() / union) if union else 0.0


def _score(region: Mapping, obj: SceneObject, scene: Scene) -> float:
    """How well a region covers an object: IoU for shapes, 1/0 for a keypoint inside/outside it."""
    kind, v = region["type"], region["value"]
    if kind == "rectanglelabels":
        return box_iou(rect_pixels(region), obj.box)
    if kind == "keypointlabels":
        return 1.0 if _inside((v["x"] / 100 * scene.width, v["y"] / 100 * scene.height), obj) else 0.0
    return _mask_iou(region, obj, scene)


def check_regions(regions: Sequence[Mapping], scene: Scene, meanings: Mapping[str, str]) -> dict[str, float]:
    """Every object a label means has exactly one region of that label covering it (IoU >= 0.5, a point
    inside its pixels), and no region is left over; returns the worst score per label."""
    strays = [r for r in regions if r["value"][r["type"]][0] not in meanings]
    assert not strays, strays
    worst: dict[str, float] = {}
    for label, meaning in meanings.items():
        mine = [r for r in regions if r["value"][r["type"]] == [label]]
        objs = _targets(meaning, scene)
        assert len(mine) == len(objs), f"{label} ({meaning}): {len(mine)} regions for {len(objs)} objects"
        pool = list(mine)
        for obj in objs:
            best = max(pool, key=lambda r: _score(r, obj, scene))
            score = _score(best, obj, scene)
            assert score >= IOU, f"{label}: {obj.name} at {obj.box} best covered at {score:.3f}"
            pool.remove(best)
            worst[label] = min(worst.get(label, 1.0), score)
    return worst


def expected_choice(scene: Scene, meanings: Mapping[str, str]) -> str:
    (choice,) = [value for value, hint in meanings.items() if hint == f"mostly {scene.dominant_colour()}"]
    return choice


def check_caption(text: str, scene: Scene) -> None:
    """The caption names every object's colour and shape (plural or not) and nothing that is not there."""
    low = text.lower()
    for obj in scene.objects:
        assert re.search(rf"\b{obj.colour} {obj.shape}s?\b", low), (obj.name, text)
    named = set(re.findall(rf"\b({'|'.join(COLOURS)})\b", low))
    assert named == scene.colours(), (named, scene.colours(), text)


def check_prediction(template: GalleryTemplate, config: str, result: list[dict], scene: Scene) -> dict[str, float]:
    """Assert that a stored prediction is valid for the template and right for the scene."""
    interface = LabelInterface(config)
    assert interface.validate_prediction({"result": result}, return_errors=True) == []
    controls = {c.name: c.tag.lower() for c in interface.controls}
    (image,) = [o.name for o in interface.objects]
    meanings = template.meanings()
    for r in result:
        assert r["to_name"] == image and r["type"] == controls[r["from_name"]], r
    worst: dict[str, float] = {}
    for name, tag in controls.items():
        mine = [r for r in result if r["from_name"] == name]
        if tag.endswith("labels"):
            for r in mine:
                assert (r["original_width"], r["original_height"]) == (scene.width, scene.height), r
            labels = {value: meanings[value] for value in meanings if value in _label_values(interface, name)}
            worst.update(check_regions(mine, scene, labels))
        elif tag == "choices":
            (r,) = mine
            assert r["value"]["choices"] == [expected_choice(scene, meanings)], (r, scene.dominant_colour())
        elif tag == "textarea":
            (r,) = mine
            (text,) = r["value"]["text"]
            check_caption(text, scene)
        else:
            raise AssertionError(f"{template.name}: no check for <{tag}> {name}")
    return worst


def _label_values(interface: LabelInterface, control: str) -> set[str]:
    return set(interface.get_control(control).labels)
