"""Label Studio's inventory-tracking and visual-genome templates (read from the installed package),
whose labels come from each task (`value="$field"`): created in the real Label Studio 1.23.2, tasks
imported shaped as the templates' own examples, "Retrieve predictions", every stored region checked
against its scene and validated with Label Studio's `LabelInterface.validate_prediction`.

The emulator sees coloured shapes by their pixels: a "product" is a coloured shape, its picture
(the entry's `html: <img src=...>`) that shape alone at another size, and the phrases name colours,
shapes and relations ("the red circle left of the red circle").
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import Scene, box_iou, encode_image, make_scene
from tests.fixtures.labelstudio import ARTIFACTS, ROOT

from .helpers import Chromium, backend_env, polygon_to_mask, rect_to_box, start_backend_process
from .templates import template_config
from .test_screenshot import IMAGE_READY_JS, REGIONS_JS, chromium  # noqa: F401  (chromium: the fixture)

pytestmark = pytest.mark.e2e

# the template's own products, each a coloured shape here
PRODUCTS = {"CocaCola": "red circle", "RedBull": "blue square", "Burn": "green triangle",
            "Breezer": "orange rectangle", "Monster": "purple circle"}
SHELVES = [  # (size, objects, seed): products and a distractor no label names (cyan square)
    ((800, 600), ["red circle", "blue square", "green triangle", "cyan square", "purple circle"], 31),
    ((720, 540), ["orange rectangle", "red circle", "red circle", "cyan square", "blue square"], 32),
]


@dataclass(frozen=True)
class Phrase:
    text: str
    colour: str | None  # the object it refers to; None: nothing in the scene
    shape: str | None = None
    pick: str = "only"  # only | leftmost | rightmost


GENOME_SCENES = [((800, 600), ["red circle", "red circle", "blue square", "green triangle", "yellow rectangle"], 41),
                 ((640, 480), ["red circle", "red circle", "blue square", "green triangle", "yellow rectangle"], 42)]
GENOME_FIELDS = {
    "regions": [Phrase("the red circle left of the red circle", "red", "circle", "leftmost"),
                Phrase("a blue square with sharp corners", "blue", "square"),
                Phrase("the purple circle under the tree", None)],
    "attributes": [Phrase("yellow rectangle is long", "yellow", "rectangle"),
                   Phrase("the triangle is green", "green", "triangle")],
    "relationships": [Phrase("red circle right of red circle", "red", "circle", "rightmost"),
                      Phrase("blue square next to yellow rectangle", "blue", "square")],
}
SCREENSHOTS = {"inventory": ROOT / "docs" / "screenshot-inventory-template.png",
               "genome": ROOT / "docs" / "screenshot-visual-genome-template.png"}


@dataclass
class TemplateProject:
    name: str
    config: str
    project_id: int
    version: str
    tasks: dict[int, tuple[Scene | None, dict]]  # task id -> (scene, data); scene None: a bad task
    predictions: dict[int, list[dict]]  # task id -> our stored predictions


def _background(index: int) -> str:
    """The first scene (the screenshot's) plain: a noisy one makes a 1.4 MB picture for docs/."""
    return "plain" if index == 0 else "noisy"


def _product_picture(cors, name: str, index: int) -> str:
    picture = make_scene(120, 120, names=[name], seed=index)  # the product alone, another size
    return cors.add(f"inventory/products/{name.replace(' ', '-')}.png", encode_image(picture.image, "png"))


def _inventory_tasks(cors) -> list[tuple[Scene | None, dict]]:
    pictures = {label: _product_picture(cors, name, i) for i, (label, name) in enumerate(PRODUCTS.items())}
    objects = [{"value": label, "html": f"<img width='100' src='{src}'/>"} for label, src in pictures.items()]
    out: list[tuple[Scene | None, dict]] = []
    for i, ((w, h), names, seed) in enumerate(SHELVES):
        scene = make_scene(w, h, names=names, seed=seed, background=_background(i))
        out.append((scene, {"image": cors.add(f"inventory/shelf-{i}.png", encode_image(scene.image, "png")),
                            "objects": objects}))
    # item 9: a labels field that is not a list costs this task only
    out.append((None, {"image": out[0][1]["image"], "objects": "CocaCola, RedBull"}))
    return out


def _genome_tasks(cors) -> list[tuple[Scene | None, dict]]:
    out: list[tuple[Scene | None, dict]] = []
    for i, ((w, h), names, seed) in enumerate(GENOME_SCENES):
        scene = make_scene(w, h, names=names, seed=seed, background=_background(i))
        data: dict = {"image": cors.add(f"genome/scene-{i}.png", encode_image(scene.image, "png"))}
        data.update({field: [{"value": p.text} for p in phrases] for field, phrases in GENOME_FIELDS.items()})
        out.append((scene, data))
    return out


def _make(ls, backend_url: str, name: str, config: str, tasks: list[tuple[Scene | None, dict]]) -> TemplateProject:
    project = ls.create_project(f"{name} template", config)
    ids = ls.import_tasks(project["id"], [data for _, data in tasks])
    ml = ls.connect_ml_backend(project["id"], backend_url, title="gemini")
    ls.retrieve_predictions(project["id"], ids)
    by_id = dict(zip(ids, tasks, strict=True))
    stored = {tid: [p for p in ls.predictions(tid) if p["model_version"] == ml["model_version"]] for tid in ids}
    return TemplateProject(name, config, project["id"], ml["model_version"], by_id, stored)


@pytest.fixture(scope="module")
def templates(label_studio, gemini_emulator, cors_images):
    backend = start_backend_process("dynamic-labels", backend_env(gemini_emulator.url, label_studio))
    try:
        inventory = _make(label_studio, backend.url, "Inventory tracking",
                          template_config("computer-vision", "inventory-tracking"), _inventory_tasks(cors_images))
        genome = _make(label_studio, backend.url, "Visual genome",
                       template_config("computer-vision", "visual-genome"), _genome_tasks(cors_images))
    finally:
        backend.stop()  # the page only needs what Label Studio stored
    return {"inventory": inventory, "genome": genome, "label_studio": label_studio}


def _polygon_box(region: dict, scene: Scene) -> tuple[float, float, float, float]:
    mask = polygon_to_mask(region["value"]["points"], scene.width, scene.height)
    ys, xs = mask.nonzero()
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def test_inventory_template_finds_each_product_by_its_picture(templates):
    project = templates["inventory"]
    interface = LabelInterface(project.config)
    for task_id, (scene, _data) in project.tasks.items():
        if scene is None:  # the bad task: nothing stored, the others unaffected
            assert project.predictions[task_id] == []
            continue
        (prediction,) = project.predictions[task_id]
        result = prediction["result"]
        assert interface.validate_prediction({"result": result}, return_errors=True) == []
        wanted = [o for o in scene.objects if o.name in PRODUCTS.values()]
        assert len(result) == len(wanted), ([r["value"]["polygonlabels"] for r in result], [o.name for o in scene.objects])
        matched = set()
        for region in result:
            assert region["type"] == "polygonlabels" and region["from_name"] == "objects"
            (label,) = region["value"]["polygonlabels"]
            box = _polygon_box(region, scene)
            obj = max(wanted, key=lambda o: box_iou(box, o.box))
            assert box_iou(box, obj.box) >= 0.8 and PRODUCTS[label] == obj.name, (label, obj.name)
            matched.add(obj.box)
        assert len(matched) == len(wanted)


def _truth(phrase: Phrase, scene: Scene):
    found = sorted(scene.matching(phrase.colour, phrase.shape), key=lambda o: o.centre[0])
    return {"only": found[0] if len(found) == 1 else None, "leftmost": found[0], "rightmost": found[-1]}[phrase.pick]


def test_visual_genome_template_grounds_each_phrase_once(templates):
    project = templates["genome"]
    interface = LabelInterface(project.config)
    assert len({p["model_version"] for preds in project.predictions.values() for p in preds}) == 1  # one version
    for task_id, (scene, _data) in project.tasks.items():
        assert scene is not None
        (prediction,) = project.predictions[task_id]
        result = prediction["result"]
        assert interface.validate_prediction({"result": result}, return_errors=True) == []
        for field, phrases in GENOME_FIELDS.items():
            mine = [r for r in result if r["from_name"] == field]
            for phrase in phrases:
                regions = [r for r in mine if r["value"]["rectanglelabels"] == [phrase.text]]
                if phrase.colour is None:
                    assert regions == [], phrase
                    continue
                (region,) = regions  # one region per phrase
                obj = _truth(phrase, scene)
                assert obj is not None, phrase
                box = rect_to_box(region["value"], scene.width, scene.height)
                assert box_iou(box, obj.box) >= 0.9, (phrase.text, box, obj.box)
            assert len(mine) == sum(1 for p in phrases if p.colour is not None)


@pytest.mark.usefixtures("chromium")  # fails, naming what to install, without Chromium
@pytest.mark.parametrize("name", ["inventory", "genome"])
def test_the_editor_shows_the_predicted_regions_with_labels_from_the_task(templates, name):
    ls, project = templates["label_studio"], templates[name]
    task_id = next(tid for tid, (scene, _) in project.tasks.items() if scene is not None)
    image = project.tasks[task_id][1]["image"]
    labels = sorted(r["value"][r["type"]][0] for r in project.predictions[task_id][0]["result"])
    with Chromium(width=1600, height=1000, log_path=ARTIFACTS / f"chromedriver-{name}.log") as b:
        b.login_label_studio(ls.url, ls.email, ls.password)
        b.navigate(f"{ls.url}/projects/{project.project_id}/data?task={task_id}")
        b.wait_for(IMAGE_READY_JS % image.rsplit("/", 1)[-1], timeout=45)
        listed = b.wait_for(f"(() => {{ const r = {REGIONS_JS}; return r.length >= {len(labels)} ? r : null; }})()", timeout=30)
        time.sleep(1.5)  # let the canvas finish drawing before the picture
        path = b.screenshot(ARTIFACTS / f"labeling-{name}-template.png")
        page = b.evaluate("document.body.innerText")
    assert sorted(listed) == labels, (listed, labels)
    # the label buttons come from the task: every label of its data is on the page
    fields = ["objects"] if name == "inventory" else list(GENOME_FIELDS)
    if name == "genome":
        for field in fields:
            assert all(entry["value"] in page for entry in project.tasks[task_id][1][field]), page[-1500:]
    assert path.stat().st_size > 20_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":  # refreshed on request only
        shutil.copyfile(path, SCREENSHOTS[name])
