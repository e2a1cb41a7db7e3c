"""Label Studio's optical-character-recognition template exactly as shipped (read from the installed
package: `$ocr`, Text / Handwriting labels without hints, Rectangle + Polygon, per-region TextArea)
on rendered documents: created in the real Label Studio 1.23.2, "Retrieve predictions", and every
stored region checked against the document (its line's box, the label of its ink, the transcription
against the line's text), validated with Label Studio's `LabelInterface.validate_prediction`.

The emulator reads the documents' pixels with Tesseract (emulator/ocr.py): nothing but the image
reaches it. A blank page in the same project gets an empty prediction, for its task only.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import encode_image
from gemini_ls.emulator.text_scenes import TextScene, make_text_scene
from tests.fixtures.labelstudio import ARTIFACTS, ROOT

from ..ocr_score import score, units
from ..region_parts import regions_by_id
from .helpers import Chromium, backend_env, start_backend_process
from .templates import template_config
from .test_screenshot import IMAGE_READY_JS, REGIONS_JS, chromium  # noqa: F401  (chromium: the fixture)

pytestmark = pytest.mark.e2e

# the page's text, with what its text boxes hold (a textarea's value is not innerText)
PAGE_TEXT_JS = """document.body.innerText + '\\n' + Array.from(document.querySelectorAll('textarea, input'))
  .map(e => e.value).join('\\n')"""
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot-ocr-template.png"
DOCUMENTS = [
    [("Invoice number 4821", "printed"), ("Issued on 3 March 2024", "printed"), ("Paid in full, thank you", "handwriting"),
     ("Total due: 129.50 EUR", "printed"), ("Signed by Anna Berg", "handwriting")],
    [("Meeting notes", "printed"), ("Call Anna on Monday", "handwriting"), ("Budget review at 10:30", "printed")],
]


@dataclass
class OcrProject:
    ls: object
    project_id: int
    config: str
    documents: dict[int, TextScene]  # task id -> its rendered document (the blank page has no lines)
    urls: dict[int, str]
    predictions: dict[int, dict]  # task id -> our stored prediction


@pytest.fixture(scope="module")
def ocr(label_studio, gemini_emulator, cors_images):
    config = template_config("computer-vision", "optical-character-recognition")
    assert 'value="$ocr"' in config and '<Rectangle name="bbox"' in config and 'perRegion="true"' in config, config
    docs = [make_text_scene(1000, 560, lines) for lines in DOCUMENTS] + [make_text_scene(800, 500, [])]
    backend = start_backend_process("ocr-template", backend_env(gemini_emulator.url, label_studio))
    try:
        project = label_studio.create_project("OCR template", config)
        urls = [cors_images.add(f"ocr/doc-{i}.png", encode_image(d.image, "png"), content_type="image/png")
                for i, d in enumerate(docs)]
        ids = label_studio.import_tasks(project["id"], [{"ocr": url} for url in urls])
        ml = label_studio.connect_ml_backend(project["id"], backend.url, title="gemini")
        reply = label_studio.retrieve_predictions(project["id"], ids)
        assert reply["detail"] == f"Retrieved {len(ids)} predictions", reply
    finally:
        backend.stop()  # the page only needs what Label Studio stored
    stored = {}
    for task_id in ids:
        (stored[task_id],) = [p for p in label_studio.predictions(task_id) if p["model_version"] == ml["model_version"]]
    return OcrProject(label_studio, project["id"], config, dict(zip(ids, docs)), dict(zip(ids, urls)), stored)


def test_every_line_is_a_region_labelled_by_its_ink_with_its_transcription(ocr):
    interface = LabelInterface(ocr.config)
    for task_id, doc in ocr.documents.items():
        if not doc.lines:
            continue  # the blank page: test_a_page_without_text_gets_an_empty_prediction
        result = ocr.predictions[task_id]["result"]
        assert interface.validate_prediction({"result": result}, return_errors=True) == []
        got = score(result, units(doc))
        assert got.found == got.total == got.regions == len(doc.lines), got
        assert got.worst_iou >= 0.6 and got.right_label == got.found, got
        assert min(got.similarities, default=1.0) >= 0.9, got
        for parts in regions_by_id(result).values():
            bbox = parts["bbox"]
            assert bbox["type"] == "rectangle" and parts["label"]["type"] == "labels"
            assert "poly" not in parts  # one shape per region: the first tool, the template's Rectangle
            assert parts["transcription"]["type"] == "textarea"
            for part in parts.values():  # each result carries the region's geometry
                assert part["value"]["x"] == bbox["value"]["x"] and part["to_name"] == "image"


def test_a_page_without_text_gets_an_empty_prediction(ocr):
    (blank,) = [task_id for task_id, doc in ocr.documents.items() if not doc.lines]
    assert ocr.predictions[blank]["result"] == []


@pytest.mark.usefixtures("chromium")  # fails, naming what to install, without Chromium
def test_the_editor_shows_one_labelled_region_per_line(ocr):
    """Label Studio's own front end joins each region's results: its outliner lists one region per
    line (not one per result), with its label; the selected line's transcription shows."""
    ls = ocr.ls
    task_id = next(iter(ocr.documents))
    regions = regions_by_id(ocr.predictions[task_id]["result"])
    labels = sorted(parts["label"]["value"]["labels"][0] for parts in regions.values())
    texts = [parts["transcription"]["value"]["text"][0] for parts in regions.values()]
    with Chromium(width=1600, height=1000, log_path=ARTIFACTS / "chromedriver-ocr.log") as b:
        b.login_label_studio(ls.url, ls.email, ls.password)
        b.navigate(f"{ls.url}/projects/{ocr.project_id}/data?task={task_id}")
        b.wait_for(IMAGE_READY_JS % ocr.urls[task_id].rsplit("/", 1)[-1], timeout=45)
        listed = b.wait_for(f"(() => {{ const r = {REGIONS_JS}; return r.length >= {len(regions)} ? r : null; }})()", timeout=30)
        # select the first region: its per-region controls (the transcription) show with it
        b.evaluate("document.querySelector('.lsf-outliner-item').click() || true")
        time.sleep(1.5)  # let the canvas finish drawing before the picture
        path = b.screenshot(ARTIFACTS / "labeling-ocr-template.png")
        page = b.evaluate(PAGE_TEXT_JS)
    assert len(listed) == len(regions), (listed, labels)
    assert sorted(listed) == labels, (listed, labels)
    # displayMode="region-list": the selected region's transcription shows in the region list
    assert any(text in page for text in texts), (texts, page[-1500:])
    assert path.stat().st_size > 20_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":  # refreshed on request only
        shutil.copyfile(path, DOCS_SCREENSHOT)
