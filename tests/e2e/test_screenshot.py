"""Label Studio's own front end draws our predictions: open the labeling page in headless Chromium,
log in like a user, check that the prediction's regions are listed, keep a screenshot."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.fixtures.labelstudio import ARTIFACTS, ROOT

from .helpers import Chromium, backend_env, find_chromedriver, find_chromium, start_backend_process
from .project import check_stored, make_project

pytestmark = pytest.mark.e2e

DOCS_SCREENSHOT = ROOT / "docs" / "screenshot-label-studio.png"

REGIONS_JS = """(() => {
  const items = Array.from(document.querySelectorAll('.lsf-outliner-item'));
  return items.map(e => (e.querySelector('.lsf-outliner-item__title') || e).innerText.trim());
})()"""
PREDICTION_TABS_JS = """Array.from(document.querySelectorAll('.lsf-annotation-button')).map(e => e.innerText)"""
IMAGE_READY_JS = """(() => {
  const img = Array.from(document.querySelectorAll('img')).find(i => i.src.includes('%s'));
  return !!(img && img.complete && img.naturalWidth > 0) && document.querySelectorAll('canvas').length > 0;
})()"""


@pytest.fixture(scope="module")
def chromium():
    if not find_chromium() or not find_chromedriver():
        pytest.fail(
            "Chromium or chromedriver not found: apt-get install chromium chromium-driver (the Makefile does it on CI), "
            "or set CHROMIUM= and CHROMEDRIVER=",
            pytrace=False,
        )
    return find_chromium()


def test_labeling_page_shows_predicted_regions(label_studio, gemini_emulator, cors_images, chromium):
    ls = label_studio
    backend = start_backend_process("screenshot", backend_env(gemini_emulator.url, ls))
    try:
        project = make_project(ls, cors_images, backend.url, "Gemini pre-annotations", n_upload=1, n_url=1, broken=False)
        ls.retrieve_predictions(project.id)
        preds = {t.task_id: check_stored(ls, t, project.ml["model_version"]) for t in project.good()}
    finally:
        backend.stop()  # the page only needs what Label Studio stored

    shots = []
    with Chromium(width=1600, height=1000, log_path=ARTIFACTS / "chromedriver.log") as b:
        b.login_label_studio(ls.url, ls.email, ls.password)
        for t in sorted(project.good(), key=lambda t: t.source != "upload"):
            pred = preds[t.task_id]
            regions = [r for r in pred["result"] if r["type"] != "choices"]
            started = time.monotonic()
            b.navigate(f"{ls.url}/projects/{project.id}/data?task={t.task_id}")
            # the task image is loaded (uploaded: through LS with the session; URL: cross-origin with CORS)
            marker = t.image.rsplit("/", 1)[-1]
            b.wait_for(IMAGE_READY_JS % marker, timeout=45)
            listed = b.wait_for(f"(() => {{ const r = {REGIONS_JS}; return r.length >= {len(regions)} ? r : null; }})()", timeout=30)
            time.sleep(1.5)  # let the canvas finish drawing before the picture
            path = b.screenshot(ARTIFACTS / f"labeling-{t.source}-task{t.task_id}.png")
            shots.append(path)
            # the page lists exactly the prediction's regions, with their labels and scores
            listed = b.evaluate(REGIONS_JS)
            labels = sorted(r["value"][r["type"]][0] for r in regions)
            assert len(listed) == len(regions), (listed, labels)
            assert sorted(listed) == labels, (listed, labels)
            # the prediction tab: model version (Label Studio shortens it to "head...tail") and score
            tabs = b.evaluate(PREDICTION_TABS_JS)
            version = project.ml["model_version"]
            score = f"{pred['score'] * 100:.2f}%"
            assert any(
                (version in tab or (version[:8] in tab and version[-6:] in tab)) and score in tab for tab in tabs
            ), (tabs, version, score)
            print(f"task {t.task_id} ({t.source}): page ready in {time.monotonic() - started:.1f} s, {len(listed)} regions")
            assert path.stat().st_size > 20_000
    # The README's picture is refreshed on request only: a test run must not change tracked files.
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots[0], DOCS_SCREENSHOT)
