"""The jobs page (docs/page.md) in headless Chromium with a REAL Label Studio project whose label
config has a label called `<img src=x onerror=alert(1)>`: a real `gemini-ls prelabel` job whose
failed tasks (their image URL, task data, quotes the same markup) are retried from the page with
"Retry failed tasks" (a new job of exactly those tasks, run by a `gemini-ls worker`); an annotation
with that label, delivered by Label Studio's own webhook, shows in the project report as text; no
alert, no <img> element; axe-core finds no serious or critical violation on the jobs list, the
project report and the Gemini panel. Screenshots go to artifacts/e2e/."""

from __future__ import annotations

import base64
import time

import pytest
import requests
from selenium.common.exceptions import NoAlertPresentException

from tests.fixtures.labelstudio import ARTIFACTS

from .axe import RUN_JS, axe_source
from .helpers import Chromium, backend_env, find_chromedriver, find_chromium, start_backend_process
from .jobs_helpers import gemini_ls, predictions_per_task, url_project
from .test_jobs_prelabel import job_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

XSS = "<img src=x onerror=alert(1)>"
USER, PASSWORD = "lead", "e2e-Pa55word"
TASKS = 12
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="rect" toName="image">
    <Label value="&lt;img src=x onerror=alert(1)&gt;" hint="red square"/>
    <Label value="Dog" hint="blue circle"/>
  </RectangleLabels>
</View>"""

ROW_JS = """const row = document.querySelector('tr[data-id="' + CSS.escape(arguments[0]) + '"]');
if (!row) return null;
const bar = row.querySelector('progress');
return {value: bar.value, max: bar.max, state: row.querySelector('.state').textContent,
        failures: row.querySelector('.failures').textContent,
        buttons: Array.from(row.querySelectorAll('button')).map(b => b.textContent)};"""


def _row(browser: Chromium, job_id: str):
    return browser.driver.execute_script(ROW_JS, job_id)


def _no_markup_ran(browser: Chromium) -> None:
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    try:
        text = browser.driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    raise AssertionError(f"an alert ran: {text!r}")


def _axe(browser: Chromium) -> None:
    browser.driver.execute_script(axe_source())
    browser.driver.set_script_timeout(60)
    violations = browser.driver.execute_async_script(RUN_JS)
    assert violations == [], violations


def test_markup_label_of_a_real_project_is_text_and_retry_requeues_the_failed_tasks(label_studio, emulator_factory, cors_images,
                                                                                    redis_url, redis_prefix):
    if not find_chromium() or not find_chromedriver():
        pytest.fail("Chromium or chromedriver not found: apt-get install chromium chromium-driver", pytrace=False)
    ls = label_studio
    emu = emulator_factory(latency=0.2)
    pid, ids = url_project(ls, cors_images, None, "e2e page markup label", TASKS, config=CONFIG)
    assert XSS in ls.get(f"/api/projects/{pid}")["label_config"] or "&lt;img" in ls.get(f"/api/projects/{pid}")["label_config"]
    broken = ids[:2]
    good_image = ls.get(f"/api/tasks/{ids[5]}")["data"]["image"]
    for tid in broken:  # task data quoting the markup: these tasks fail, their reason quotes their URL
        ls.patch(f"/api/tasks/{tid}", {"data": {"image": cors_images.url(f"gone/{tid}/{XSS}.png")}})
    env = job_env(emu, ls, redis_url, redis_prefix, JOB_RETRIES="0", JOB_CHUNK="4")
    backend = start_backend_process("page-project", backend_env(emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
                                                                BASIC_AUTH_USER=USER, BASIC_AUTH_PASS=PASSWORD, SERVE_WORKER="false",
                                                                GEMINI_RPM="600"))
    worker = gemini_ls("page-project-worker", ["worker"], env)
    auth = (USER, PASSWORD)
    browser = Chromium(width=1400, height=900)
    try:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        browser.driver.execute_cdp_cmd("Network.enable", {})
        browser.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        out = run_cli(["prelabel", "--project", str(pid), "--quiet"], env)
        assert out.returncode == 1, out.stderr  # two tasks failed
        job_id = out.stdout.strip().splitlines()[-1]
        browser.driver.get(backend.url + "/")
        browser.wait_for(f"document.querySelector('tr[data-id=\"{job_id}\"] .state')", timeout=30)
        row = _row(browser, job_id)
        assert row["state"] == "failed" and row["value"] == row["max"] == TASKS, row
        assert XSS in row["failures"], row  # the first failure's text, task data with markup, as text
        assert row["buttons"] == ["Retry failed tasks"], row
        _no_markup_ran(browser)

        # the images come back; Retry on the page makes a new job of exactly the two failed tasks
        for tid in broken:
            ls.patch(f"/api/tasks/{tid}", {"data": {"image": good_image}})
        before = {j["id"] for j in requests.get(backend.url + "/api/jobs", auth=auth, timeout=30).json()}
        browser.driver.execute_script(
            "document.querySelector('tr[data-id=\"' + CSS.escape(arguments[0]) + '\"] button.retry').click()", job_id)
        browser.wait_for("document.getElementById('action-status').textContent", timeout=30)
        said = browser.evaluate("document.getElementById('action-status').textContent")
        new_ids = [j["id"] for j in requests.get(backend.url + "/api/jobs", auth=auth, timeout=30).json() if j["id"] not in before]
        assert len(new_ids) == 1 and said.startswith(f"retried {job_id} as job {new_ids[0]} (2 tasks)"), (said, new_ids)
        retry_id = new_ids[0]
        browser.wait_for(f"(r => r && r.querySelector('.state').textContent === 'done')"
                         f"(document.querySelector('tr[data-id=\"{retry_id}\"]'))", timeout=120)
        retried = _row(browser, retry_id)
        assert retried["value"] == retried["max"] == 2, retried
        (version,) = {v for v, n in ls.get(f"/api/projects/{pid}/model-versions/").items() if n}
        assert sorted(set(predictions_per_task(ls, pid, version).values())) == [1]  # every task, once
        shot_jobs = browser.screenshot(ARTIFACTS / "page-jobs-retry.png")

        # an annotation with the markup label, delivered by Label Studio's own webhook
        ls.post("/api/webhooks", {"project": pid, "url": backend.url + "/webhook", "send_payload": True, "send_for_all_actions": False,
                                  "actions": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"],
                                  "headers": {"Authorization": f"Basic {token}"}})
        for tid in ids[2:6]:
            pred = next(p for p in ls.get(f"/api/predictions?task={tid}") if p["model_version"] == version)
            result = [r for r in pred["result"] if r.get("type") == "rectanglelabels"]
            assert result, pred
            result[0]["value"]["rectanglelabels"] = [XSS]
            ls.post(f"/api/tasks/{tid}/annotations", {"result": result})
        deadline = time.monotonic() + 60
        report = None
        while time.monotonic() < deadline:
            r = requests.get(f"{backend.url}/api/projects/{pid}/report", auth=auth, timeout=30)
            if r.status_code == 200 and (report := r.json())["model_versions"].get(version, {}).get("annotations") == 4:
                break
            time.sleep(0.5)
        assert report is not None and XSS in report["model_versions"][version]["labels"], report
        time.sleep(10.5)  # the page's project summaries are cached for 10 s per process (web/reports.py)
        browser.driver.refresh()
        browser.wait_for(f"document.querySelector('#projects a[href=\"/projects/{pid}\"]')", timeout=30)
        assert browser.evaluate("document.querySelector('#quota').textContent").count("/ 600") >= 1  # the Gemini panel
        _no_markup_ran(browser)
        _axe(browser)  # the jobs list with both jobs, the Gemini panel, the project summaries
        browser.driver.execute_script(f"document.querySelector('#projects a[href=\"/projects/{pid}\"]').click()")
        browser.wait_for(f"document.getElementById('project-{pid}')", timeout=30)
        labels = browser.evaluate("Array.from(document.querySelectorAll('table.report th[scope=row]')).map(e => e.textContent)")
        assert XSS in labels and labels[-1] == "all", labels
        legend = browser.evaluate("document.querySelector('ul.legend').textContent")
        assert XSS in legend, legend
        assert browser.evaluate("document.querySelector('figure.calibration').textContent").count("not fitted yet") == 1
        history = browser.evaluate("document.querySelector('table.history').textContent")
        assert version in history and "first reviewed version" in history, history
        _no_markup_ran(browser)
        _axe(browser)  # the project report: table, chart, history, scorecards slot, calibration slot
        project_shot = browser.screenshot(ARTIFACTS / "page-project-markup-label.png")
        assert shot_jobs.exists() and project_shot.exists()  # the docs' pictures come from test_page_browser.py
    finally:
        browser.close()
        worker.stop()
        backend.stop()
