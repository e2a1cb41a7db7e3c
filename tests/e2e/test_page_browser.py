"""The jobs page (docs/page.md) in headless Chromium against the real Label Studio, a real Redis, a
`gemini-ls worker` and a real `gemini-ls prelabel` job: the progress bar moves and ends at the task
count Label Studio holds; a failure reason that is markup shows as text; axe-core finds no serious or
critical accessibility violation; the project panel (review ledger) shows a label that is markup as
text, and its score calibration diagram (120 reviewed regions with a confidence). Screenshots go to artifacts/e2e/ (docs/images/ with
UPDATE_DOCS_SCREENSHOT=1)."""

from __future__ import annotations

import base64
import os
import random
import shutil
import time

import pytest
import redis
import requests

from gemini_ls.jobs.records import JobInfo
from gemini_ls.jobs.state import RedisJobStore
from gemini_ls.review.ledger import Contribution, RedisLedger, Sample
from gemini_ls.review.stats import LabelStats, Tally
from tests.fixtures.labelstudio import ARTIFACTS, ROOT

from .axe import RUN_JS, axe_source
from .helpers import Chromium, backend_env, find_chromedriver, find_chromium, start_backend_process
from .jobs_helpers import gemini_ls, predictions_per_task, url_project
from .test_jobs_prelabel import job_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

XSS = "<img src=x onerror=alert(1)>"
USER, PASSWORD = "lead", "e2e-Pa55word"
TASKS = 60
DOCS_IMAGE = ROOT / "docs" / "images" / "page-jobs.png"
DOCS_PROJECT_IMAGE = ROOT / "docs" / "images" / "page-project.png"

ROW_JS = """const row = document.querySelector('tr[data-id="' + CSS.escape(arguments[0]) + '"]');
if (!row) return null;
const bar = row.querySelector('progress');
return {value: bar.value, max: bar.max, state: row.querySelector('.state').textContent,
        counts: row.querySelector('.counts').textContent};"""


def _row(browser: Chromium, job_id: str):
    return browser.driver.execute_script(ROW_JS, job_id)


def test_jobs_page_follows_a_real_job_escapes_markup_and_passes_axe(label_studio, emulator_factory, cors_images, redis_url, redis_prefix):
    if not find_chromium() or not find_chromedriver():
        pytest.fail("Chromium or chromedriver not found: apt-get install chromium chromium-driver", pytrace=False)
    ls = label_studio
    emu = emulator_factory(latency=0.8)
    pid, _ = url_project(ls, cors_images, None, "e2e jobs page", TASKS)
    env = job_env(emu, ls, redis_url, redis_prefix, GEMINI_CONCURRENCY="2")
    backend = start_backend_process("page", backend_env(emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
                                                        BASIC_AUTH_USER=USER, BASIC_AUTH_PASS=PASSWORD))
    worker = gemini_ls("page-worker", ["worker"], env)
    browser = Chromium(width=1400, height=800)
    try:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        browser.driver.execute_cdp_cmd("Network.enable", {})  # basic auth on every request, the page's fetch() included
        browser.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        browser.driver.get(backend.url + "/")
        assert browser.evaluate("document.title") == "gemini-ls jobs"

        out = run_cli(["prelabel", "--project", str(pid), "--no-wait"], env)
        assert out.returncode == 0, out.stderr
        job_id = out.stdout.strip().splitlines()[-1]
        seen: list[int] = []
        shot = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            row = _row(browser, job_id)
            if row is not None:
                if not seen or row["value"] != seen[-1]:
                    seen.append(row["value"])
                if shot is None and 15 <= row["value"] < row["max"] - 15:
                    browser.driver.refresh()  # the Gemini panel is rendered at load: show the job's calls so far
                    browser.wait_for(f"document.querySelector('tr[data-id=\"{job_id}\"]')", timeout=30)
                    shot = browser.screenshot(ARTIFACTS / "page-jobs.png")  # the page during the job
                if row["value"] >= row["max"] and row["state"] == "done":
                    break
            time.sleep(0.3)
        held = len(ls.tasks(pid))
        row = _row(browser, job_id)
        assert row is not None and row["state"] == "done", (row, seen)
        assert row["value"] == row["max"] == held == TASKS, (row, held)
        assert f"{held} done / 0 failed / 0 skipped / {held} total" == row["counts"]
        intermediate = [v for v in seen if 0 < v < held]
        assert len(intermediate) >= 2 and intermediate == sorted(intermediate), seen  # it moved, forward only
        assert shot is not None
        # the worker's Gemini calls (another process) are in the panel's numbers for today, through Redis
        gemini = requests.get(backend.url + "/api/gemini", auth=(USER, PASSWORD), timeout=30).json()
        assert sum(t["requests"] for t in gemini["today"]["tokens"].values()) >= TASKS, gemini["today"]
        assert all(t["input"] > 0 for t in gemini["today"]["tokens"].values()), gemini["today"]

        # a failure reason that is markup (a label name quoted in an error) is shown as text
        store = RedisJobStore(redis.Redis.from_url(redis_url), redis_prefix)
        store.create(JobInfo(id="xss-job", project=pid, model_version="v-xss", total=2, created=time.time()), "<View/>")
        store.mark_failed("xss-job", {1: f"{XSS}: not a label of the project"})
        browser.wait_for("document.querySelector('tr[data-id=\"xss-job\"]')", timeout=30)
        cell = browser.evaluate("document.querySelector('tr[data-id=\"xss-job\"] .failures').textContent")
        assert cell == f"{XSS}: 1{XSS}: not a label of the project", cell  # the count by reason, then the message
        assert browser.evaluate("document.querySelectorAll('#jobs img').length") == 0
        # the project panel: a label called <img ...> in the review ledger, as the webhook fills it, two versions
        ledger = RedisLedger.from_url(redis_url, redis_prefix)
        versions = ("gemini-ls-gemini-3.6-flash-p1-0a1b2c3d", "gemini-ls-gemini-3.6-flash-p1-9f8e7d6c-l5e6f7a8b")
        for n, (version, deleted) in enumerate(zip(versions, (4, 1))):
            tally = Tally({XSS: LabelStats(accepted=6, adjusted=2, deleted=deleted, missed=1),
                           "red square": LabelStats(accepted=9, adjusted=1, deleted=deleted - 1)}, 10)
            ledger.replace(900 + n, Contribution(900 + n, pid, 900 + n, version, tally, updated_at=time.time() + n))
        regions = _scored_reviews(ledger, pid, versions[1])  # enough for the score calibration diagram
        browser.driver.refresh()  # server-rendered HTML, before the script runs again
        assert browser.evaluate("document.querySelectorAll('img').length") == 0
        assert XSS in browser.evaluate("document.querySelector('tr[data-id=\"xss-job\"] .failures').textContent")
        browser.driver.execute_script(axe_source())
        browser.driver.set_script_timeout(60)
        violations = browser.driver.execute_async_script(RUN_JS)
        assert violations == [], violations  # the jobs list, the Gemini panel, the project summaries
        browser.driver.get(f"{backend.url}/projects/{pid}")
        labels = browser.evaluate("Array.from(document.querySelectorAll('table.report th[scope=row]')).map(e => e.textContent)")
        assert labels == [XSS, "red square", "all"], labels
        history = browser.evaluate("document.querySelector('table.history').textContent")
        assert "label settings or hints changed" in history and "learned thresholds/synonyms added" in history, history
        assert browser.evaluate("document.querySelectorAll('img').length") == 0
        figure = browser.evaluate("document.querySelector('figure.calibration').textContent")
        assert f"{regions} reviewed region(s)" in figure and figure.count("ECE 0.") == 2 and "not fitted" not in figure, figure
        assert browser.evaluate("document.querySelectorAll('figure.calibration polyline').length") == 2
        project_shot = browser.screenshot(ARTIFACTS / "page-project.png")
        browser.driver.execute_script(axe_source())
        violations = browser.driver.execute_async_script(RUN_JS)
        assert violations == [], violations  # the project report
        if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
            DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, DOCS_IMAGE)
            shutil.copyfile(project_shot, DOCS_PROJECT_IMAGE)
        print(f"progress values seen: {seen}")
    finally:
        browser.close()
        worker.stop()
        backend.stop()


def _scored_reviews(ledger: RedisLedger, project: int, version: str, annotations: int = 40) -> int:
    """Reviewed regions with Gemini's confidence, as the webhook stores them (overconfident: a region
    scored s is kept with probability s**2), for the report's calibration diagram; their number."""
    rng = random.Random(project)
    for n in range(annotations):
        samples = []
        for label in (XSS, "red square", "red square"):
            s = round(rng.uniform(0.5, 1.0), 2)
            samples.append(Sample(label, "accepted" if rng.random() < s * s else "deleted", s, size=0.05))
        tally = Tally({label: LabelStats(accepted=sum(1 for x in samples if x.label == label and x.outcome == "accepted"),
                                         deleted=sum(1 for x in samples if x.label == label and x.outcome == "deleted"))
                       for label in (XSS, "red square")}, 1)
        ledger.replace(950 + n, Contribution(950 + n, project, 950 + n, version, tally, tuple(samples), updated_at=time.time() + 2))
    return annotations * 3


def _gemini_calls(emu) -> int:
    return emu.counters()["requests"].get("generateContent", 0)


def test_cancel_on_the_page_stops_a_real_prelabel_job(label_studio, emulator_factory, cors_images, redis_url, redis_prefix):
    """One worker, chunks of 10 at 2 concurrent 1 s requests: Cancel after the first chunk; the
    running chunk finishes, no other chunk starts, and the Gemini calls stop."""
    if not find_chromium() or not find_chromedriver():
        pytest.fail("Chromium or chromedriver not found: apt-get install chromium chromium-driver", pytrace=False)
    ls = label_studio
    emu = emulator_factory(latency=1.0)
    pid, _ = url_project(ls, cors_images, None, "e2e jobs page cancel", TASKS)
    env = job_env(emu, ls, redis_url, redis_prefix, GEMINI_CONCURRENCY="2")
    backend = start_backend_process("page-cancel", backend_env(emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
                                                               BASIC_AUTH_USER=USER, BASIC_AUTH_PASS=PASSWORD, SERVE_WORKER="false"))
    worker = gemini_ls("page-cancel-worker", ["worker"], env)
    browser = Chromium(width=1400, height=800)
    try:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        browser.driver.execute_cdp_cmd("Network.enable", {})
        browser.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        browser.driver.get(backend.url + "/")
        out = run_cli(["prelabel", "--project", str(pid), "--no-wait"], env)
        assert out.returncode == 0, out.stderr
        job_id = out.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and ((row := _row(browser, job_id)) is None or row["value"] < 10):
            time.sleep(0.2)
        assert row is not None and 10 <= row["value"] < TASKS, row
        browser.driver.execute_script(
            "document.querySelector('tr[data-id=\"' + CSS.escape(arguments[0]) + '\"] button').click()", job_id)
        browser.wait_for(f"document.querySelector('tr[data-id=\"{job_id}\"] .state').textContent === 'cancelled'", timeout=30)
        # the chunk that was running finishes (at most 10 tasks, about 5 s); then nothing moves
        last, still_since = -1, time.monotonic()
        end = time.monotonic() + 60
        while time.monotonic() < end and time.monotonic() - still_since < 4:
            calls = _gemini_calls(emu)
            if calls != last:
                last, still_since = calls, time.monotonic()
            time.sleep(0.5)
        time.sleep(3)
        assert _gemini_calls(emu) == last, "Gemini was called after the cancelled job settled"
        row = _row(browser, job_id)
        assert row["state"] == "cancelled" and row["value"] <= 30 and last <= 30, (row, last)
        assert len(ls.tasks(pid)) == TASKS  # Label Studio still holds every task; only the predictions stopped
        print(f"cancelled at {row['counts']}; {last} Gemini calls")
    finally:
        browser.close()
        worker.stop()
        backend.stop()


def test_start_prelabel_of_a_view_shows_the_estimate_first(label_studio, emulator_factory, cors_images, redis_url, redis_prefix):
    """The page's "Start prelabel" for a Data Manager view: Estimate shows the figures (countTokens
    only: no generateContent), Start is enabled only then, and the job it starts predicts exactly
    the view's tasks, once each."""
    if not find_chromium() or not find_chromedriver():
        pytest.fail("Chromium or chromedriver not found: apt-get install chromium chromium-driver", pytrace=False)
    ls = label_studio
    emu = emulator_factory()
    pid, ids = url_project(ls, cors_images, None, "e2e page start prelabel", 30)
    in_view = ids[:12]
    view = ls.request("POST", "/api/dm/views", json={"project": pid, "data": {"title": "first 12", "filters": {
        "conjunction": "and", "items": [{"filter": "filter:tasks:id", "operator": "less_or_equal", "type": "Number",
                                         "value": in_view[-1]}]}}}, expect=201).json()["id"]
    env = job_env(emu, ls, redis_url, redis_prefix)
    backend = start_backend_process("page-start", backend_env(emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
                                                              BASIC_AUTH_USER=USER, BASIC_AUTH_PASS=PASSWORD, SERVE_WORKER="false"))
    worker = gemini_ls("page-start-worker", ["worker"], env)
    browser = Chromium(width=1400, height=800)
    try:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        browser.driver.execute_cdp_cmd("Network.enable", {})
        browser.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        browser.driver.get(backend.url + "/")
        assert browser.evaluate("document.getElementById('prelabel-start').disabled") is True
        browser.driver.execute_script(
            "const f = document.getElementById('prelabel'); f.project.value = arguments[0]; f.view.value = arguments[1];"
            "document.getElementById('prelabel-estimate').click();", str(pid), str(view))
        browser.wait_for("document.getElementById('prelabel-result').textContent.startsWith('estimate for')", timeout=90)
        text = browser.evaluate("document.getElementById('prelabel-result').textContent")
        assert text.startswith("estimate for 12 tasks (countTokens on 12 sampled): 12 requests") and "with --batch" in text, text
        assert emu.counters()["requests"].get("countTokens", 0) == 12
        assert _gemini_calls(emu) == 0  # the estimate predicts nothing
        assert browser.evaluate("document.getElementById('prelabel-start').disabled") is False
        browser.driver.execute_script("document.getElementById('prelabel-start').click()")
        browser.wait_for("document.getElementById('prelabel-result').textContent.startsWith('started job')", timeout=60)
        job_id = browser.evaluate("document.getElementById('prelabel-result').textContent").split()[2].rstrip(":")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and ((row := _row(browser, job_id)) is None or row["state"] != "done"):
            time.sleep(0.3)
        assert row is not None and row["state"] == "done" and row["value"] == row["max"] == 12, row
        (version,) = [v for v, n in ls.get(f"/api/projects/{pid}/model-versions/").items() if n]
        counts = predictions_per_task(ls, pid, version)
        assert {t: counts[t] for t in ids} == {t: int(t in in_view) for t in ids}, counts
        assert _gemini_calls(emu) == 12
    finally:
        browser.close()
        worker.stop()
        backend.stop()
