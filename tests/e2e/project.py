"""The e2e project: one image, four image controls (RectangleLabels, BrushLabels, PolygonLabels,
Choices), tasks made from synthetic scenes whose ground truth we know, and the checks of what
Label Studio stored against that ground truth."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import Scene, box_iou, encode_image, make_scene, mask_iou

from .helpers import brush_to_mask, polygon_to_mask, rect_to_box

# Labels name what to find with Label Studio's `hint` attribute (the hover text), which is what
# our backend describes to Gemini. The emulator finds coloured shapes by their pixels.
LABEL_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="rect" toName="image">
    <Label value="Cat" hint="red square" background="#ff6d00"/>
    <Label value="Dog" hint="blue circle" background="#00c853"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image">
    <Label value="Cat" hint="red square" background="#ffab00"/>
    <Label value="Dog" hint="blue circle" background="#64dd17"/>
  </BrushLabels>
  <PolygonLabels name="poly" toName="image">
    <Label value="Cat" hint="red square" background="#d500f9"/>
    <Label value="Dog" hint="blue circle" background="#00b8d4"/>
  </PolygonLabels>
  <Choices name="colour" toName="image" choice="single" showInline="true">
    <Choice value="Reddish" hint="mostly red"/>
    <Choice value="Bluish" hint="mostly blue"/>
    <Choice value="Greenish" hint="mostly green"/>
  </Choices>
</View>"""

TARGETS = {"Cat": ("red", "square"), "Dog": ("blue", "circle")}
CHOICE_OF_COLOUR = {"red": "Reddish", "blue": "Bluish", "green": "Greenish"}
CONTROL_TYPES = {"rect": "rectanglelabels", "brush": "brushlabels", "poly": "polygonlabels", "colour": "choices"}

RECT_IOU = 0.9
BRUSH_IOU = 0.85
POLY_IOU = 0.8

# (size, object names, seed, format): distinct scenes, some with distractors the labels do not ask for
SCENE_SPECS = [
    ((640, 480), ["red square", "blue circle", "green triangle"], 11, "png"),
    ((800, 600), ["red square", "red square", "blue circle", "green rectangle"], 12, "jpeg"),
    ((512, 512), ["blue circle", "green square", "blue circle"], 13, "png"),
    ((720, 540), ["red square", "green circle", "blue circle", "blue circle"], 14, "jpeg"),
    ((600, 400), ["red square", "blue circle"], 15, "png"),
    ((640, 640), ["green triangle", "red square", "blue circle"], 16, "png"),
]


def scenes(n: int, offset: int = 0) -> list[tuple[Scene, bytes, str]]:
    out = []
    for i in range(n):
        (w, h), names, seed, fmt = SCENE_SPECS[(offset + i) % len(SCENE_SPECS)]
        scene = make_scene(w, h, names=names, seed=seed + 100 * ((offset + i) // len(SCENE_SPECS)))
        out.append((scene, encode_image(scene.image, fmt), fmt))
    return out


@dataclass
class TaskTruth:
    task_id: int
    source: str  # "upload" | "url" | "broken"
    scene: Scene | None
    image: str = ""


@dataclass
class Project:
    id: int
    ml: dict
    tasks: dict[int, TaskTruth] = field(default_factory=dict)

    def good(self) -> list[TaskTruth]:
        return [t for t in self.tasks.values() if t.scene is not None]

    def broken(self) -> list[TaskTruth]:
        return [t for t in self.tasks.values() if t.scene is None]


def make_project(
    ls,
    images,
    backend_url: str,
    title: str,
    *,
    n_upload: int = 2,
    n_url: int = 2,
    broken: bool = True,
    config: str = LABEL_CONFIG,
    offset: int = 0,
) -> Project:
    """Create the project, import tasks (uploads + CORS URLs + optionally one broken image) and
    connect our backend through Label Studio's API (LS calls /health and /setup)."""
    project = ls.create_project(title, config)
    pid = project["id"]
    truth: dict[int, TaskTruth] = {}
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    items = scenes(n_upload + n_url, offset)
    for i, (scene, data, fmt) in enumerate(items[:n_upload]):
        (tid,) = ls.upload_image(pid, f"scene-{offset + i}.{fmt}", data, f"image/{fmt}")
        truth[tid] = TaskTruth(tid, "upload", scene)
    url_tasks = []
    for i, (scene, data, fmt) in enumerate(items[n_upload:]):
        url = images.add(f"{slug}/scene-{offset + n_upload + i}.{fmt}", data, f"image/{fmt}")
        url_tasks.append(({"image": url}, scene))
    if broken:
        url = images.add(f"{slug}/broken.png", b"\x89PNG\r\n\x1a\nthis is not really a png", "image/png")
        url_tasks.append(({"image": url}, None))
    if url_tasks:
        ids = ls.import_tasks(pid, [d for d, _ in url_tasks])
        for tid, (_d, scene) in zip(ids, url_tasks):
            truth[tid] = TaskTruth(tid, "url" if scene is not None else "broken", scene)
    for t in ls.tasks(pid):
        truth[t["id"]].image = t["data"]["image"]
    ml = ls.connect_ml_backend(pid, backend_url, title="gemini")
    return Project(pid, ml, truth)


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------


def expected_objects(scene: Scene) -> dict[str, list]:
    return {label: list(scene.matching(colour, shape)) for label, (colour, shape) in TARGETS.items()}


def check_result(result: list[dict], scene: Scene, config: str = LABEL_CONFIG) -> dict[str, float]:
    """Assert that one prediction's regions match the scene; returns the worst IoU per control."""
    li = LabelInterface(config)
    errors = li.validate_prediction({"result": result}, return_errors=True)
    assert errors == [], f"LabelInterface.validate_prediction: {errors}"
    by_control: dict[str, list[dict]] = {}
    for r in result:
        assert r["to_name"] == "image"
        assert r["type"] == CONTROL_TYPES[r["from_name"]], r
        by_control.setdefault(r["from_name"], []).append(r)
    present = {c.tag.lower(): c.name for c in li.controls}
    want = expected_objects(scene)
    n_expected = sum(len(v) for v in want.values())
    worst: dict[str, float] = {}
    for control, kind, threshold in (
        ("rect", "rectanglelabels", RECT_IOU),
        ("brush", "brushlabels", BRUSH_IOU),
        ("poly", "polygonlabels", POLY_IOU),
    ):
        if kind not in present:
            continue
        regions = by_control.get(control, [])
        assert len(regions) == n_expected, (
            f"{control}: {len(regions)} regions, scene has {n_expected} targets ({ {k: [o.name for o in v] for k, v in want.items()} })"
        )
        worst[control] = 1.0
        for r in regions:
            assert r["original_width"] == scene.width and r["original_height"] == scene.height, r
            score = r.get("score")
            assert score is None or 0.0 < score <= 1.0, r
        for label, objs in want.items():
            mine = [r for r in regions if r["value"][kind] == [label]]
            assert len(mine) == len(objs), f"{control}/{label}: {len(mine)} regions for {len(objs)} objects"
            for obj in objs:
                if control == "rect":
                    ious = [box_iou(rect_to_box(r["value"], scene.width, scene.height), obj.box) for r in mine]
                else:
                    truth_mask = obj.full_mask(scene.width, scene.height)
                    if control == "brush":
                        assert all(r["value"].get("format") == "rle" for r in mine), mine
                        masks = [brush_to_mask(r["value"]["rle"], scene.width, scene.height) for r in mine]
                    else:
                        masks = [polygon_to_mask(r["value"]["points"], scene.width, scene.height) for r in mine]
                    ious = [mask_iou(m, truth_mask) for m in masks]
                best = max(ious)
                assert best >= threshold, f"{control}/{label} {obj.name} at {obj.box}: best IoU {best:.3f} < {threshold}"
                worst[control] = min(worst[control], best)
    if "choices" in present:
        choices = by_control.get("colour", [])
        assert len(choices) == 1, f"expected one Choices result, got {choices}"
        dominant = scene.dominant_colour()
        assert choices[0]["value"]["choices"] == [CHOICE_OF_COLOUR[dominant]], (choices[0], dominant)
    return worst


def check_stored(ls, task: TaskTruth, model_version: str, config: str = LABEL_CONFIG) -> dict:
    """Exactly one stored prediction of our model version for a good task, matching its scene."""
    preds = ls.predictions(task.task_id)
    ours = [p for p in preds if p["model_version"] == model_version]
    assert len(ours) == 1, f"task {task.task_id} ({task.source}): {len(ours)} predictions of {model_version}: {preds}"
    p = ours[0]
    assert p["task"] == task.task_id
    assert isinstance(p["score"], float) and 0.0 < p["score"] <= 1.0, p["score"]
    check_result(p["result"], task.scene, config)
    return p


# A rectangles-only project: one Gemini call per task (deadline and failure-path tests).
RECT_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="rect" toName="image">
    <Label value="Cat" hint="red square"/>
    <Label value="Dog" hint="blue circle"/>
  </RectangleLabels>
</View>"""
