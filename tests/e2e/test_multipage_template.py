"""Label Studio's multipage-documents template (read from the installed package): created in the real
Label Studio 1.23.2, tasks of several page images imported as the template expects (`pages`, a list of
URLs), "Retrieve predictions", and every stored region checked on its page (`item_index`) against
that page's scene, validated with Label Studio's `LabelInterface.validate_prediction`. One document
has a page whose URL is missing: only that page goes without regions.

The emulator reads coloured shapes, not documents: the template's five labels get `hint`s naming
shapes, and each page is a synthetic scene of them.
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

from ..helpers import rect_pixels
from .helpers import Chromium, backend_env, start_backend_process
from .templates import template_config
from .test_screenshot import REGIONS_JS, chromium  # noqa: F401  (chromium: the fixture)

pytestmark = pytest.mark.e2e

DOCS_SCREENSHOT = ROOT / "docs" / "screenshot-multipage-template.png"
HINTS = {"Title": ("red", "rectangle"), "Date": ("blue", "square"), "Author": ("green", "circle"),
         "Organization": ("yellow", "triangle"), "Amount": ("purple", "square")}
LABEL_OF = {shape: label for label, shape in HINTS.items()}
# documents: the objects of each page (None: a page whose URL is missing, 404)
DOCUMENTS = [
    [["red rectangle", "blue square", "green circle"], ["yellow triangle", "purple square"], ["red rectangle"]],
    [["green circle", "purple square"], None, ["blue square", "yellow triangle", "red rectangle"], ["purple square"]],
]
# the editor loads a page as a blob: URL and shows "1 of N" above it
PAGE_READY_JS = """(() => {
  const imgs = Array.from(document.querySelectorAll('img')).filter(i => i.src.startsWith('blob:'));
  return imgs.some(i => i.complete && i.naturalWidth > 0) && document.querySelectorAll('canvas').length > 0
    && document.body.innerText.includes('of %d');
})()"""


def multipage_config() -> str:
    config = template_config("computer-vision", "multipage-documents")
    for label, (colour, shape) in HINTS.items():
        config = config.replace(f'<Label value="{label}"', f'<Label value="{label}" hint="{colour} {shape}"', 1)
    assert config.count("hint=") == 5 and 'valueList="$pages"' in config, config
    return config


@dataclass
class Document:
    task_id: int
    pages: list[Scene | None]


@dataclass
class MultipageProject:
    ls: object
    project_id: int
    config: str
    documents: list[Document]
    predictions: dict[int, dict]  # task id -> our stored prediction


@pytest.fixture(scope="module")
def multipage(label_studio, gemini_emulator, cors_images):
    config = multipage_config()
    tasks, scenes = [], []
    for d, objects in enumerate(DOCUMENTS):
        urls, pages = [], []
        for p, names in enumerate(objects):
            if names is None:  # never added to the image server: a 404 for this page only
                urls.append(cors_images.url(f"multipage-template/doc{d}-page{p}-missing.png"))
                pages.append(None)
                continue
            scene = make_scene(600 + 40 * p, 800, names=names, seed=300 + 10 * d + p)
            urls.append(cors_images.add(f"multipage-template/doc{d}-page{p}.png", encode_image(scene.image, "png"), "image/png"))
            pages.append(scene)
        tasks.append({"pages": urls})
        scenes.append(pages)
    ls = label_studio
    project = ls.create_project("Multi-page documents template", config)
    ids = ls.import_tasks(project["id"], tasks)
    backend = start_backend_process("multipage-template", backend_env(gemini_emulator.url, label_studio))
    try:
        ml = ls.connect_ml_backend(project["id"], backend.url, title="gemini")
        reply = ls.retrieve_predictions(project["id"], ids)
        assert reply["detail"] == f"Retrieved {len(ids)} predictions", reply
    finally:
        backend.stop()  # the page only needs what Label Studio stored
    stored = {}
    for tid in ids:
        (stored[tid],) = [p for p in ls.predictions(tid) if p["model_version"] == ml["model_version"]]
    return MultipageProject(ls, project["id"], config, [Document(t, s) for t, s in zip(ids, scenes)], stored)


def test_multipage_template_predictions_page_by_page(multipage):
    interface = LabelInterface(multipage.config)
    for doc in multipage.documents:
        result = multipage.predictions[doc.task_id]["result"]
        assert interface.validate_prediction({"result": result}, return_errors=True) == []
        for page, scene in enumerate(doc.pages):
            mine = [r for r in result if r["item_index"] == page]
            if scene is None:  # the missing page: no regions, the other pages theirs
                assert mine == []
                continue
            assert len(mine) == len(scene.objects), (doc.task_id, page, mine)
            matched = set()
            for region in mine:
                assert region["type"] == "rectanglelabels" and region["to_name"] == "pdf"
                assert (region["original_width"], region["original_height"]) == (scene.width, scene.height)
                box = rect_pixels(region)
                obj = max(scene.objects, key=lambda o: box_iou(box, o.box))
                assert box_iou(box, obj.box) >= 0.9, (page, box, obj.box)
                assert region["value"]["rectanglelabels"] == [LABEL_OF[(obj.colour, obj.shape)]]
                matched.add(obj.box)
            assert len(matched) == len(scene.objects)
        assert {r["item_index"] for r in result} == {i for i, s in enumerate(doc.pages) if s is not None}


@pytest.mark.usefixtures("chromium")  # fails, naming what to install, without Chromium
def test_the_editor_shows_the_document_with_its_regions(multipage):
    """Label Studio's own front end shows the document page by page ("1 of 3") and lists the
    predicted regions of all its pages."""
    ls = multipage.ls
    doc = multipage.documents[0]
    result = multipage.predictions[doc.task_id]["result"]
    labels = sorted(r["value"]["rectanglelabels"][0] for r in result)
    with Chromium(width=1600, height=1200, log_path=ARTIFACTS / "chromedriver-multipage.log") as b:
        b.login_label_studio(ls.url, ls.email, ls.password)
        b.navigate(f"{ls.url}/projects/{multipage.project_id}/data?task={doc.task_id}")
        b.wait_for(PAGE_READY_JS % len(doc.pages), timeout=45)
        listed = b.wait_for(f"(() => {{ const r = {REGIONS_JS}; return r.length >= {len(result)} ? r : null; }})()", timeout=30)
        time.sleep(1.5)  # let the canvas finish drawing before the picture
        path = b.screenshot(ARTIFACTS / "labeling-multipage-template.png")
    assert sorted(listed) == labels, (listed, labels)  # the outliner lists the regions of every page
    assert path.stat().st_size > 20_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":  # refreshed on request only
        shutil.copyfile(path, DOCS_SCREENSHOT)
