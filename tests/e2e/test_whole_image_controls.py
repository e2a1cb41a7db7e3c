"""Number, Rating and Taxonomy on the whole image, added to Label Studio's image-classification
template (read from the installed package): created in the real Label Studio 1.23.2, "Retrieve
predictions", each stored answer checked against its scene and validated with Label Studio's
`LabelInterface.validate_prediction`, and shown by Label Studio's editor (the taxonomy's chosen paths).
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import encode_image, make_scene
from tests.fixtures.labelstudio import ARTIFACTS, ROOT

from .helpers import Chromium, backend_env, start_backend_process
from .templates import template_config
from .test_ocr_template import PAGE_TEXT_JS
from .test_screenshot import IMAGE_READY_JS, chromium  # noqa: F401  (chromium: the fixture)

pytestmark = pytest.mark.e2e

DOCS_SCREENSHOT = ROOT / "docs" / "screenshot-whole-image-controls.png"

ADDED = """
  <Number name="circles" toName="image" min="0" max="20" hint="How many circles are there?"/>
  <Rating name="clutter" toName="image" maxRating="5"/>
  <Taxonomy name="kind" toName="image">
    <Choice value="Shapes"><Choice value="Circle" hint="a circle"/><Choice value="Square" hint="a square"/>
      <Choice value="Triangle" hint="a triangle"/></Choice>
    <Choice value="Colours"><Choice value="Red"/><Choice value="Blue"/><Choice value="Green"/></Choice>
  </Taxonomy>
</View>"""
SCENES = [
    (["red square", "blue circle", "blue circle"], 41),
    (["green triangle", "red circle", "red square", "blue square", "green circle", "red circle"], 42),
]
SHAPES, COLOURS = {"circle": "Circle", "square": "Square", "triangle": "Triangle"}, {"red": "Red", "blue": "Blue", "green": "Green"}


def whole_config() -> str:
    config = template_config("computer-vision", "image-classification")
    assert config.rstrip().endswith("</View>"), config
    return config.rstrip()[: -len("</View>")] + ADDED


@pytest.fixture(scope="module")
def whole(label_studio, gemini_emulator, cors_images):
    config = whole_config()
    pid = label_studio.create_project("whole-image controls", config)["id"]
    scenes = [make_scene(640, 480, names=names, seed=seed) for names, seed in SCENES]
    urls = [cors_images.add(f"whole/scene-{i}.png", encode_image(s.image, "png"), "image/png") for i, s in enumerate(scenes)]
    ids = label_studio.import_tasks(pid, [{"image": url} for url in urls])
    backend = start_backend_process("whole-image", backend_env(gemini_emulator.url, label_studio))
    try:
        ml = label_studio.connect_ml_backend(pid, backend.url, title="gemini")
        reply = label_studio.retrieve_predictions(pid, ids)
        assert reply["detail"] == f"Retrieved {len(ids)} predictions", reply
    finally:
        backend.stop()
    stored = {}
    for tid in ids:
        (stored[tid],) = [p for p in label_studio.predictions(tid) if p["model_version"] == ml["model_version"]]
    return label_studio, pid, config, list(zip(ids, scenes, urls)), stored


def test_each_control_gets_the_answer_its_scene_gives(whole):
    _ls, _pid, config, tasks, stored = whole
    interface = LabelInterface(config)
    for tid, scene, _url in tasks:
        result = stored[tid]["result"]
        assert interface.validate_prediction({"result": result}, return_errors=True) == []
        by_name = {r["from_name"]: r for r in result}
        assert by_name["circles"]["value"] == {"number": sum(o.shape == "circle" for o in scene.objects)}
        assert by_name["clutter"]["value"] == {"rating": min(5, len(scene.objects))}
        paths = {("Shapes", SHAPES[o.shape]) for o in scene.objects} | {("Colours", COLOURS[o.colour]) for o in scene.objects}
        assert sorted(map(tuple, by_name["kind"]["value"]["taxonomy"])) == sorted(paths)
        assert all(r["to_name"] == "image" for r in result)


@pytest.mark.usefixtures("chromium")  # fails, naming what to install, without Chromium
def test_the_editor_shows_the_chosen_taxonomy_paths(whole):
    ls, pid, _config, tasks, stored = whole
    tid, _scene, url = tasks[0]
    with Chromium(width=1400, height=1000, log_path=ARTIFACTS / "chromedriver-whole-image.log") as b:
        b.login_label_studio(ls.url, ls.email, ls.password)
        b.navigate(f"{ls.url}/projects/{pid}/data?task={tid}")
        b.wait_for(IMAGE_READY_JS % url.rsplit("/", 1)[-1], timeout=45)
        page = b.wait_for(f"(() => {{ const t = {PAGE_TEXT_JS}; return t.includes('Circle') ? t : null; }})()", timeout=30)
        time.sleep(1.0)
        path = b.screenshot(ARTIFACTS / "labeling-whole-image.png")
    # Label Studio's Taxonomy shows each selected path as its leaf; the Number shows its value
    assert "Circle" in page and "Square" in page and "Blue" in page and "Red" in page, page[-1500:]
    assert str(stored[tid]["result"][0]) and path.stat().st_size > 20_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":  # refreshed on request only
        shutil.copyfile(path, DOCS_SCREENSHOT)
