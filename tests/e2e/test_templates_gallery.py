"""Label Studio's own computer-vision templates, as a new user starts from the gallery (issue 23 item 8):
each config read from the installed `label-studio` package (tests/e2e/gallery.py adds `hint`s, nothing
else), one project per template in the real Label Studio 1.23.2, two tasks under the template's own
data key, the Data Manager's "Retrieve predictions", every stored region checked against its scene and
validated with `LabelInterface.validate_prediction`, then the labeling page in Chromium with the
predictions drawn (`UPDATE_DOCS_SCREENSHOT=1` copies it to docs/screenshots/<template>.png).

One backend for the module; the projects are made once per template (a module-scoped parametrized
fixture), so each template costs two predictions and one page load.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass

import pytest

from gemini_ls.emulator.scenes import Scene
from tests.fixtures.labelstudio import ARTIFACTS, ROOT

from .gallery import TEMPLATES, GalleryTemplate, check_prediction, expected_choice, scene_files
from .helpers import Chromium, backend_env, start_backend_process
from .test_ocr_template import PAGE_TEXT_JS
from .test_screenshot import IMAGE_READY_JS, REGIONS_JS, chromium  # noqa: F401  (chromium: the fixture)

pytestmark = pytest.mark.e2e

DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
# the choices Label Studio's editor shows ticked, without their hotkey ("Weapons[2]")
CHECKED_JS = """Array.from(document.querySelectorAll('.lsf-choices input:checked'))
  .map(e => (e.closest('label') || e.parentElement).innerText.replace(/\\[\\w+\\]$/, '').trim())"""


@dataclass(frozen=True)
class GalleryTask:
    task_id: int
    scene: Scene
    url: str


@dataclass(frozen=True)
class GalleryProject:
    template: GalleryTemplate
    config: str
    id: int
    tasks: tuple[GalleryTask, ...]
    predictions: dict[int, dict]  # task id -> our stored prediction
    seconds: float  # project, import, connect and "Retrieve predictions"


@pytest.fixture(scope="module")
def gallery_backend(label_studio, gemini_emulator):
    backend = start_backend_process("templates-gallery", backend_env(gemini_emulator.url, label_studio))
    yield backend
    backend.stop()


@pytest.fixture(scope="module", params=TEMPLATES, ids=[t.name for t in TEMPLATES])
def gallery(request, label_studio, cors_images, gallery_backend) -> GalleryProject:
    template: GalleryTemplate = request.param
    ls, started = label_studio, time.monotonic()
    config = template.config()
    pid = ls.create_project(f"Template: {template.name}", config)["id"]
    files = scene_files()
    data = [{template.key: cors_images.add(f"gallery/{template.name}/scene-{i}.{fmt}", body, f"image/{fmt}")}
            for i, (_scene, body, fmt) in enumerate(files)]
    ids = ls.import_tasks(pid, data)
    tasks = tuple(GalleryTask(tid, scene, d[template.key]) for tid, (scene, _b, _f), d in zip(ids, files, data, strict=True))
    ml = ls.connect_ml_backend(pid, gallery_backend.url, title="gemini")
    reply = ls.retrieve_predictions(pid, list(ids))
    assert reply["detail"] == f"Retrieved {len(ids)} predictions", reply
    stored = {}
    for task in tasks:
        (stored[task.task_id],) = [p for p in ls.predictions(task.task_id) if p["model_version"] == ml["model_version"]]
    return GalleryProject(template, config, pid, tasks, stored, time.monotonic() - started)


def test_template_predictions_match_the_scene(gallery):
    for task in gallery.tasks:
        prediction = gallery.predictions[task.task_id]
        assert prediction["task"] == task.task_id
        worst = check_prediction(gallery.template, gallery.config, prediction["result"], task.scene)
        print(f"{gallery.template.name} task {task.task_id}: {len(prediction['result'])} results, worst {worst}")
    print(f"{gallery.template.name}: project to stored predictions in {gallery.seconds:.1f} s")


@pytest.fixture(scope="module")
def browser(label_studio, chromium):  # noqa: F811  (chromium: the fixture imported above)
    with Chromium(width=1400, height=900, log_path=ARTIFACTS / "chromedriver-gallery.log") as b:
        b.login_label_studio(label_studio.url, label_studio.email, label_studio.password)
        yield b


def test_labeling_page_shows_the_template_predictions(gallery, browser, label_studio):
    """Label Studio's editor draws the prediction: its regions listed with their labels, the choice
    ticked, the caption shown; the picture is kept (docs/screenshots/ on request)."""
    task = gallery.tasks[0]
    result = gallery.predictions[task.task_id]["result"]
    regions = sorted(r["value"][r["type"]][0] for r in result if r["type"].endswith("labels"))
    browser.navigate(f"{label_studio.url}/projects/{gallery.id}/data?task={task.task_id}")
    browser.wait_for(IMAGE_READY_JS % task.url.rsplit("/", 1)[-1], timeout=45)
    browser.wait_for(f"{REGIONS_JS}.length >= {len(regions)}", timeout=30)
    for r in result:  # the whole-image answers are drawn too
        if r["type"] == "choices":
            assert browser.wait_for(CHECKED_JS + ".length > 0", timeout=30)
            assert browser.evaluate(CHECKED_JS) == [expected_choice(task.scene, gallery.template.meanings())]
        if r["type"] == "textarea":
            assert browser.wait_for(f"({PAGE_TEXT_JS}).includes({json.dumps(r['value']['text'][0])})", timeout=30)
    time.sleep(1.5)  # let the canvas finish drawing before the picture
    path = browser.screenshot(ARTIFACTS / f"gallery-{gallery.template.name}.png")
    listed = browser.evaluate(REGIONS_JS)
    assert sorted(listed) == regions, (listed, regions)
    assert path.stat().st_size > 20_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":  # refreshed on request only
        DOCS_SCREENSHOTS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{gallery.template.name}.png")
