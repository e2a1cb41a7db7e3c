"""The jobs page and its JSON (web/, docs/page.md) on the real Flask app, a real redis-server and
the emulator: what the one job store holds is what /api/jobs and the page say; user content is
escaped; the headers, basic auth, read-only mode and the CSRF check hold."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from gemini_ls.emulator.server import DEFAULT_API_KEY
from gemini_ls.gemini.pricing import Tokens
from gemini_ls.jobs.records import BatchRecord, JobInfo
from gemini_ls.jobs.state import RedisJobStore
from gemini_ls.review.ledger import Contribution, RedisLedger
from gemini_ls.review.stats import LabelStats, Tally
from gemini_ls.server import create_app
from gemini_ls.settings import Settings
from gemini_ls.web.security import COOKIE

XSS = "<img src=x onerror=alert(1)>"
USER, PASSWORD = "lead", "pa55-Word"
CONFIG = '<View><Image name="img" value="$image"/><RectangleLabels name="r" toName="img"><Label value="car"/></RectangleLabels></View>'
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def _auth(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _fill(redis_url: str, prefix: str) -> tuple[str, str]:
    """One prelabel job (3 done, 1 failed with an XSS reason, 1 written elsewhere, of 10) and one
    Batch API job waiting on a batch being submitted (2 written, 1 failed, 5 tasks, priced tokens)."""
    store = RedisJobStore(redis.Redis.from_url(redis_url), prefix)
    info = JobInfo(id="20261205-120000-abcdef", project=7, model_version="gemini-ls-v1", total=10, created=time.time() - 60)
    store.create(info, "<View/>")
    store.mark_done(info.id, [1, 2, 3])
    store.mark_failed(info.id, {4: f"bad_label: {XSS}"})
    store.mark_elsewhere(info.id, {5: "click"})
    batch = store.batch(8, "gemini-ls-v2")
    batch.set_total(5)
    for task in (11, 12, 13, 14, 15):
        batch.put_meta(task, {"img": (10, 10)})
    batch.add_written([11, 12])
    batch.add_failed(13, f"parse: {XSS}")
    batch.put_batch(BatchRecord("batches/done-1", "SUCCEEDED", "d", 3, "inline", "gemini-2.5-flash"))
    batch.set_submitting("gemini-ls-8-next")
    batch.add_usage("gemini-2.5-flash", Tokens(prompt=100_000, output=10_000, requests=3))
    return info.id, batch.job


def _batch_cancelled(redis_url: str, prefix: str) -> bool:
    info = RedisJobStore(redis.Redis.from_url(redis_url), prefix).get("batch:8:gemini-ls-v2")
    assert info is not None
    return info.cancelled


@pytest.fixture
def app_for(emu, redis_url, redis_prefix):
    made = []

    def make(**extra):
        app = create_app(Settings(api_key=DEFAULT_API_KEY, base_url=emu.url, redis_url=redis_url, redis_prefix=redis_prefix, **extra))
        made.append(app)
        return app.test_client()

    yield make
    for app in made:
        app.extensions["gemini_ls"].runner.shutdown()


def test_api_jobs_lists_both_kinds_with_counts_state_and_cost(app_for, redis_url, redis_prefix):
    prelabel_id, batch_id = _fill(redis_url, redis_prefix)
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    jobs = {j["id"]: j for j in client.get("/api/jobs", headers=_auth()).get_json()}
    p, b = jobs[prelabel_id], jobs[batch_id]
    counts = (p["kind"], p["project"], p["state"], p["total"], p["done"], p["failed"], p["skipped"])
    assert counts == ("prelabel", "7", "running", 10, 3, 1, 1)
    assert p["failed_by_reason"] == {"bad_label": 1} and p["cost_usd"] is None
    assert p["rate_per_min"] > 0 and p["eta_seconds"] > 0
    assert (b["kind"], b["project"], b["state"], b["total"], b["done"], b["failed"]) == ("batch", "8", "waiting for the Batch API", 5, 2, 1)
    assert b["models"] == ["gemini-2.5-flash"] and b["tokens"] == 110_000 and b["cost_usd"] > 0 and b["can_cancel"]
    detail = client.get(f"/api/jobs/{prelabel_id}", headers=_auth()).get_json()
    assert detail["failures"] == {"4": f"bad_label: {XSS}"}
    assert client.get(f"/api/jobs/{batch_id}", headers=_auth()).get_json()["failures"] == {"13": f"parse: {XSS}"}
    # an unknown batch id is a 404 and is NOT registered by being asked about
    assert client.get("/api/jobs/batch:99:nope", headers=_auth()).status_code == 404
    r = redis.Redis.from_url(redis_url)
    assert r.zscore(f"{redis_prefix}jobs", "batch:99:nope") is None and not r.exists(f"{redis_prefix}job:batch:99:nope")
    assert client.get("/api/jobs/nope", headers=_auth()).status_code == 404


def test_page_escapes_user_content_and_sends_the_safety_headers(app_for, redis_url, redis_prefix):
    _fill(redis_url, redis_prefix)
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    page = client.get("/", headers={**HTML, **_auth()})
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert XSS not in html and "<img" not in html
    assert "20261205-120000-abcdef" in html and "batch:8:gemini-ls-v2" in html
    assert "<script>" not in html.replace(" ", "")  # the only script is the package's own file
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert DEFAULT_API_KEY not in html and PASSWORD not in html
    script = client.get("/ui/static/page.js", headers=_auth())
    assert script.status_code == 200 and "textContent" in script.get_data(as_text=True) and "innerHTML" not in script.get_data(as_text=True)
    for path in ("/api/jobs", "/api/jobs/batch:8:gemini-ls-v2"):
        body = client.get(path, headers=_auth()).get_data(as_text=True)
        assert DEFAULT_API_KEY not in body and PASSWORD not in body
    # Label Studio and curl (*/*) still get the health JSON at /
    assert client.get("/", headers=_auth()).get_json()["model_class"] == "GeminiBackend"


def test_page_and_json_sit_behind_basic_auth(app_for, redis_url, redis_prefix):
    _fill(redis_url, redis_prefix)
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    for path, headers in (("/", HTML), ("/api/jobs", {}), ("/api/jobs/batch:8:gemini-ls-v2", {}), ("/ui/static/page.js", {})):
        for auth in ({}, _auth(password="wrong")):
            assert client.get(path, headers={**headers, **auth}).status_code == 401, (path, auth)


def test_cancel_needs_the_csrf_token_and_cancels_the_batch_job(app_for, redis_url, redis_prefix):
    _, batch_id = _fill(redis_url, redis_prefix)
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    url = f"/api/jobs/{batch_id}/cancel"
    client.get("/", headers={**HTML, **_auth()})  # sets the token cookie
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    assert client.post(url, headers=_auth()).status_code == 403  # no token
    assert client.post(url, headers={**_auth(), "X-CSRF-Token": "x" * 43}).status_code == 403  # a wrong one
    assert client.get(f"/api/jobs/{batch_id}", headers=_auth()).get_json()["state"] == "waiting for the Batch API"
    ok = client.post(url, headers={**_auth(), "X-CSRF-Token": cookie.value})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert _batch_cancelled(redis_url, redis_prefix)
    assert client.get(f"/api/jobs/{batch_id}", headers=_auth()).get_json()["state"] == "cancelled"
    # the page's form without script: the token as a field, back to the page
    again = client.post(url, data={"csrf_token": cookie.value}, headers=_auth())
    assert again.status_code == 303 and again.headers["Location"].endswith("/")


def test_without_basic_auth_the_page_is_read_only(app_for, redis_url, redis_prefix):
    _, batch_id = _fill(redis_url, redis_prefix)
    client = app_for()
    html = client.get("/", headers=HTML).get_data(as_text=True)
    assert "Read-only" in html and "Cancel" not in html
    client_cookie = client.get_cookie(COOKIE)
    assert client_cookie is not None
    refused = client.post(f"/api/jobs/{batch_id}/cancel", headers={"X-CSRF-Token": client_cookie.value})
    assert refused.status_code == 403 and "read-only" in refused.get_json()["error"]
    assert not _batch_cancelled(redis_url, redis_prefix)


def test_without_redis_the_page_says_jobs_are_not_shared(emu):
    """This process's own jobs are listed (tests/integration/test_page_local_jobs.py), none from Redis."""
    from gemini_ls.jobs.memstore import process_store

    app = create_app(Settings(api_key=DEFAULT_API_KEY, base_url=emu.url))
    try:
        client = app.test_client()
        assert [j["id"] for j in client.get("/api/jobs").get_json()] == [j.id for j in process_store().recent(100)]
        assert "No REDIS_URL" in client.get("/", headers=HTML).get_data(as_text=True)
    finally:
        app.extensions["gemini_ls"].runner.shutdown()


def test_cancel_of_a_prelabel_job_takes_its_queued_chunks_off_the_rq_queue(app_for, redis_url, redis_prefix):
    from rq.job import Job

    from gemini_ls.jobs.queue import RQJobQueue

    settings = Settings(redis_url=redis_url, redis_prefix=redis_prefix)
    store = RedisJobStore(redis.Redis.from_url(redis_url), redis_prefix)
    info = JobInfo(id="job-to-cancel", project=3, model_version="v", total=4, created=time.time())
    store.create(info, "<View/>")
    queue = RQJobQueue(settings, redis.Redis.from_url(redis_url))
    rq_ids = queue.submit(info.id, [[{"id": 1}, {"id": 2}], [{"id": 3}, {"id": 4}]])  # no worker: both stay queued
    store.set_chunks(info.id, 2, rq_ids)
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    assert client.get(f"/api/jobs/{info.id}", headers=_auth()).get_json()["state"] == "queued"
    client.get("/", headers={**HTML, **_auth()})
    token = client.get_cookie(COOKIE).value
    assert client.post(f"/api/jobs/{info.id}/cancel", headers={**_auth(), "X-CSRF-Token": token}).status_code == 200
    assert queue.queue.count == 0
    assert [Job.fetch(r, connection=queue.client).get_status() for r in rq_ids] == ["canceled", "canceled"]
    job = client.get(f"/api/jobs/{info.id}", headers=_auth()).get_json()
    assert job["state"] == "cancelled" and not job["can_cancel"]
    assert [j["state"] for j in client.get("/api/jobs", headers=_auth()).get_json() if j["id"] == info.id] == ["cancelled"]
    assert client.post("/api/jobs/no-such-job/cancel", headers={**_auth(), "X-CSRF-Token": token}).status_code == 404


def _review(redis_url: str, prefix: str) -> None:
    """The review ledger as the webhook fills it: project 9, two versions; in v2 the XSS label is
    deleted less often than in v1."""
    ledger = RedisLedger.from_url(redis_url, prefix)
    tallies = {"gemini-ls-v1": Tally({XSS: LabelStats(accepted=1, deleted=3), "car": LabelStats(accepted=4, adjusted=1, missed=2)}, 4),
               "gemini-ls-v2": Tally({XSS: LabelStats(accepted=3, deleted=1), "car": LabelStats(accepted=5)}, 4)}
    for n, (version, t) in enumerate(tallies.items()):
        ledger.replace(100 + n, Contribution(100 + n, 9, 200 + n, version, t, updated_at=time.time() + n))


def test_project_report_json_and_panel_from_the_review_ledger(app_for, redis_url, redis_prefix):
    _review(redis_url, redis_prefix)
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    report = client.get("/api/projects/9/report", headers=_auth()).get_json()
    assert report["project"] == 9 and report["versions"] == ["gemini-ls-v1", "gemini-ls-v2"]
    assert report["model_versions"]["gemini-ls-v2"]["labels"][XSS]["deleted"] == 1
    assert report["deletion_rate_trend"][XSS] == [0.75, 0.25]
    assert client.get("/api/projects/10/report", headers=_auth()).status_code == 404
    assert client.get("/api/projects/9/report").status_code == 401
    html = client.get("/", headers={**HTML, **_auth()}).get_data(as_text=True)
    assert '<a href="/projects/9">Project 9</a>' in html and "33% → 11%" in html  # the summary: every label together
    page = client.get("/projects/9", headers={**HTML, **_auth()})
    assert page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "75% → 25%" in html
    assert client.get("/projects/10", headers={**HTML, **_auth()}).status_code == 404
    assert client.get("/projects/9", headers=HTML).status_code == 401


def test_start_prelabel_actions_need_auth_csrf_and_valid_fields(app_for, redis_url, redis_prefix):
    """The page's "Start prelabel" endpoints on the real app (the whole flow against the real Label
    Studio is tests/e2e/test_page_browser.py): read-only without basic auth, CSRF checked before any
    work, fields validated, and no Label Studio credentials said plainly."""
    read_only = app_for()
    assert read_only.post("/api/prelabel/estimate", data={"project": "1"}).status_code == 403
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    page = client.get("/", headers={**HTML, **_auth()}).get_data(as_text=True)
    assert 'id="prelabel"' in page and 'id="prelabel-start" disabled' in page
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    for path in ("/api/prelabel/estimate", "/api/prelabel/start"):
        assert client.post(path, data={"project": "1"}, headers=_auth()).status_code == 403  # no token
        headers = {**_auth(), "X-CSRF-Token": cookie.value}
        bad = client.post(path, data={"project": XSS}, headers=headers)
        assert bad.status_code == 400 and "not a number" in bad.get_json()["error"]
        assert bad.headers["Content-Type"].startswith("application/json")  # never HTML: the markup is data
        assert client.post(path, data={"project": "1", "max_cost": "-2"}, headers=headers).status_code == 400
        assert client.post(path, json={"view": "3"}, headers=headers).get_json()["error"].startswith("project")
        missing = client.post(path, data={"project": "1"}, headers=headers)
        assert missing.status_code == 409 and "LABEL_STUDIO_URL" in missing.get_json()["error"], missing.get_json()


def _ls_tasks(fake_label_studio, project: int, ids: list[int]) -> None:
    """The fake Label Studio's project `project`: GET /api/tasks gives the tasks `ids`, filtered by
    the selectedItems query the client sends (labelstudio/tasks.py); its config is CONFIG."""
    import json
    from urllib.parse import parse_qs, urlsplit

    from tests.fixtures.servers import Reply

    def serve(req):
        if not fake_label_studio._authorized(req.headers.get("authorization", "")):
            return Reply(401, b"{}", "application/json")
        q = parse_qs(urlsplit(req.path).query)
        assert q["project"] == [str(project)]
        wanted = json.loads(q["query"][0])["selectedItems"]["included"]
        tasks = [{"id": t, "data": {"image": f"https://img.example/{t}.png"}} for t in ids if t in wanted]
        return Reply(200, json.dumps({"tasks": tasks, "total": len(tasks)}).encode(), "application/json")

    fake_label_studio.server.add_handler("/api/tasks", serve)
    # what a retry reads as `gemini-ls prelabel --tasks` does (jobs/start.py): the project's config
    # (its model_version is the server's own derivation) and which versions the project holds
    project_body = json.dumps({"id": project, "label_config": CONFIG}).encode()
    fake_label_studio.server.add_handler(f"/api/projects/{project}", lambda req: Reply(200, project_body, "application/json"))
    fake_label_studio.server.add_handler(f"/api/projects/{project}/model-versions/",
                                         lambda req: Reply(200, b"{}", "application/json"))


def test_retry_requeues_only_the_failed_tasks_as_a_new_job(app_for, redis_url, redis_prefix, fake_label_studio):
    from rq.job import Job

    from gemini_ls.jobs.queue import RQJobQueue

    _ls_tasks(fake_label_studio, 7, list(range(1, 11)))
    store = RedisJobStore(redis.Redis.from_url(redis_url), redis_prefix)
    info = JobInfo(id="20261205-130000-retry1", project=7, model_version="old", total=5, created=time.time() - 60)
    store.create(info, CONFIG)
    store.mark_done(info.id, [1, 2, 3])
    store.mark_failed(info.id, {4: "timeout: Gemini did not answer", 9: f"bad_label: {XSS}"})
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD, label_studio_url=fake_label_studio.url,
                     label_studio_api_key=fake_label_studio.legacy_token, job_chunk=1)
    job = client.get(f"/api/jobs/{info.id}", headers=_auth()).get_json()
    assert job["state"] == "failed" and job["can_retry"] and not job["can_cancel"]
    html = client.get("/", headers={**HTML, **_auth()}).get_data(as_text=True)
    assert "Retry failed tasks" in html
    token = client.get_cookie(COOKIE).value
    url = f"/api/jobs/{info.id}/retry"
    assert client.post(url, headers=_auth()).status_code == 403  # no CSRF token
    assert client.post(url, headers={**_auth(), "X-CSRF-Token": "y" * 43}).status_code == 403
    answer = client.post(url, headers={**_auth(), "X-CSRF-Token": token})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["retry_of"] == info.id and body["tasks"] == 2 and body["job"] != info.id
    new = client.get(f"/api/jobs/{body['job']}", headers=_auth()).get_json()
    assert (new["kind"], new["project"], new["state"], new["total"], new["done"]) == ("prelabel", "7", "queued", 2, 0)
    assert new["model_version"].startswith("gemini-ls-")  # the server's own derivation, as a worker checks it
    # exactly the failed tasks, one chunk each (JOB_CHUNK=1), with Label Studio's data, on the one jobs queue
    rq_ids = RedisJobStore(redis.Redis.from_url(redis_url), redis_prefix).rq_ids(body["job"])
    queue = RQJobQueue(Settings(redis_url=redis_url, redis_prefix=redis_prefix), redis.Redis.from_url(redis_url))
    assert queue.queue.count == 2
    chunks = [Job.fetch(r, connection=queue.client).args for r in rq_ids]
    assert sorted(args[1][0]["id"] for args in chunks) == [4, 9]
    assert {args[1][0]["data"]["image"] for args in chunks} == {"https://img.example/4.png", "https://img.example/9.png"}
    # the old job is unchanged; the form without script goes back to the page; a running job is refused
    assert client.get(f"/api/jobs/{info.id}", headers=_auth()).get_json()["failed"] == 2
    again = client.post(url, data={"csrf_token": token}, headers=_auth())
    assert again.status_code == 303 and again.headers["Location"].endswith("/")
    refused = client.post(f"/api/jobs/{body['job']}/retry", headers={**_auth(), "X-CSRF-Token": token})
    assert refused.status_code == 409 and "running" in refused.get_json()["error"]
    assert client.post("/api/jobs/nope/retry", headers={**_auth(), "X-CSRF-Token": token}).status_code == 404


def test_retry_is_refused_read_only_and_without_label_studio(app_for, redis_url, redis_prefix):
    store = RedisJobStore(redis.Redis.from_url(redis_url), redis_prefix)
    info = JobInfo(id="20261205-140000-retry2", project=7, model_version="old", total=1, created=time.time())
    store.create(info, "<View/>")
    store.mark_failed(info.id, {1: "timeout"})
    read_only = app_for()
    read_only.get("/", headers=HTML)
    token = read_only.get_cookie(COOKIE).value
    assert read_only.post(f"/api/jobs/{info.id}/retry", headers={"X-CSRF-Token": token}).status_code == 403
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    client.get("/", headers={**HTML, **_auth()})
    token = client.get_cookie(COOKIE).value
    refused = client.post(f"/api/jobs/{info.id}/retry", headers={**_auth(), "X-CSRF-Token": token})
    assert refused.status_code == 409 and "LABEL_STUDIO_URL" in refused.get_json()["error"]


def test_project_panel_has_chart_history_scorecards_and_calibration_slot(app_for, redis_url, redis_prefix):
    from gemini_ls.review import scorecards

    ledger = RedisLedger.from_url(redis_url, redis_prefix)
    v1 = "gemini-ls-gemini-2.5-flash-p1-0a1b2c3d"
    v2 = "gemini-ls-gemini-2.5-flash-p1-9f8e7d6c-l12345678"
    tallies = {v1: Tally({"car": LabelStats(accepted=1, deleted=3)}, 4),
               v2: Tally({"car": LabelStats(accepted=3, deleted=1), XSS: LabelStats(accepted=2)}, 5)}
    for n, (version, t) in enumerate(tallies.items()):
        ledger.replace(300 + n, Contribution(300 + n, 11, 400 + n, version, t, updated_at=time.time() + n))
    card = scorecards.scorecard("flash", "gemini-2.5-flash, max_objects=20", Tally({XSS: LabelStats(accepted=3, deleted=1)}, 4),
                                4, 0, 4000, 400, 0.00012, [1.0, 2.0, 3.0])
    scorecards.save(redis.Redis.from_url(redis_url), redis_prefix, scorecards.Evaluation(11, 1_780_000_000.0, (card,)))
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    report = client.get("/api/projects/11/report", headers=_auth()).get_json()
    assert [h["model_version"] for h in report["history"]] == [v1, v2]
    assert report["history"][1]["changes"] == [f"labels added: {XSS}", "learned thresholds/synonyms added"]
    assert report["calibration"] is None
    scored = report["evaluation"]["scorecards"][0]
    assert scored["variant"] == "flash" and scored["labels"][XSS]["precision"] == 0.75 and scored["latency_p50"] == 2.0
    html = client.get("/projects/11", headers={**HTML, **_auth()}).get_data(as_text=True)
    assert "<svg role=\"img\"" in html and "<polyline" in html and "not fitted yet" in html
    assert "labels added: &lt;img src=x onerror=alert(1)&gt;" in html and XSS not in html
    assert "gemini-2.5-flash, max_objects=20" in html and "2026-05-28" in html


def test_evaluate_stores_its_scorecards_where_the_page_reads_them(app_for, redis_url, redis_prefix):
    """`gemini-ls evaluate`'s hook (review/cli.py `store_scorecards`) with the results it computed."""
    from gemini_ls.review.cli import store_scorecards
    from gemini_ls.review.evaluate import VariantResult, parse_variant

    settings = Settings(redis_url=redis_url, redis_prefix=redis_prefix, api_key="k")
    variant = parse_variant("name=pro,model=gemini-2.5-pro,max_objects=5", settings, 0)
    result = VariantResult(variant, Tally({"car": LabelStats(accepted=4)}, 4), tasks=4, failed=0, input_tokens=8000,
                           output_tokens=800, latencies=(0.5, 1.5), seconds=2.0)
    store_scorecards(settings, 12, [result])
    _review(redis_url, redis_prefix)  # project 9 has reviews; 12 has only the evaluation
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)
    body = client.get("/api/projects/12/report", headers=_auth()).get_json()
    card = body["evaluation"]["scorecards"][0]
    assert card["variant"] == "pro" and "gemini-2.5-pro, max_objects=5" in card["settings"]
    assert card["input_tokens_per_task"] == 2000 and card["labels"]["all"]["recall"] == 1.0 and card["latency_p50"] == 1.0
    assert body["versions"] == [] and body["calibration"] is None


def test_gemini_panel_shows_routing_quota_cooldown_files_cache_and_spend(app_for, redis_url, redis_prefix, image_server):
    """Real /predict calls (the real SDK against the emulator, GEMINI_FILES=always): two processes'
    worth of calls land in the one shared window and the one daily usage hash the panel reads."""
    from gemini_ls.emulator.scenes import encode_image, make_scene
    from tests.helpers import config, rect_control

    model = Settings().model  # GEMINI_MODEL's default
    url = image_server.add("/panel.png", encode_image(make_scene(320, 240, 2, seed=7).image, "png"))
    tasks = [{"id": 1, "data": {"image": url}}]
    extra = dict(basic_auth_user=USER, basic_auth_pass=PASSWORD, files_policy="always", fetch_allowlist=("127.0.0.1",),
                 gemini_rpm=100, gemini_tpm=1_000_000, prices=((model, 0.30, 2.50),))
    first, second = app_for(**extra, model_version_suffix="a"), app_for(**extra, model_version_suffix="b")
    for client in (first, second):  # another process: the second one finds the uploaded file in the shared cache
        r = client.post("/predict", json={"tasks": tasks, "label_config": config(rect_control())}, headers=_auth())
        assert r.status_code == 200 and r.get_json()["results"][0]["result"], r.get_data(as_text=True)
    gemini = client.get("/api/gemini", headers=_auth()).get_json()
    assert gemini["routing"]["boxes"] == model
    quota = {q["model"]: q for q in gemini["quota"]}[model]
    assert quota["requests"] == 2 and quota["rpm"] == 100 and quota["input_tokens"] > 0 and quota["cooldown_seconds"] == 0
    today = gemini["today"]
    flash = today["tokens"][model]
    assert flash["requests"] == 2 and flash["input"] == quota["input_tokens"] and flash["output"] > 0
    assert today["cost_usd"] == pytest.approx((flash["input"] * 0.30 + (flash["output"] + flash["thoughts"]) * 2.50) / 1e6)
    files = today["files_cache"]
    assert (files["hits"], files["misses"], files["hit_rate"]) == (1, 1, 0.5) and files["bytes_saved"] > 1000
    # a 429's cool-down, shared through Redis, as the gate records it
    first.application.extensions["gemini_ls"].rate_gate.cool_down(30, model)
    quota = {q["model"]: q for q in client.get("/api/gemini", headers=_auth()).get_json()["quota"]}[model]
    assert 25 < quota["cooldown_seconds"] <= 30
    html = client.get("/", headers={**HTML, **_auth()}).get_data(as_text=True)
    assert "Quota windows in use" in html and "2 / 100" in html and "50% (1 of 2)" in html and "s left" in html


def _cli(redis_url: str, prefix: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "REDIS_", "LABEL_STUDIO_"))}
    env.update({"REDIS_URL": redis_url, "REDIS_PREFIX": prefix, "LOG_LEVEL": "WARNING"})
    return subprocess.run([str(Path(sys.executable).parent / "gemini-ls"), *args], env=env, capture_output=True, text=True, timeout=60)


def test_cli_jobs_and_report_print_what_the_json_answers(app_for, redis_url, redis_prefix):
    """`gemini-ls jobs [ID] --json` and `gemini-ls report --from-ledger` call the functions the
    page's JSON answers with: the same bodies (rates and ETAs aside, they move with the clock)."""
    prelabel_id, batch_id = _fill(redis_url, redis_prefix)
    _review(redis_url, redis_prefix)
    client = app_for(basic_auth_user=USER, basic_auth_pass=PASSWORD)

    def steady(jobs):
        return [{k: v for k, v in j.items() if k not in ("rate_per_min", "eta_seconds")} for j in jobs]

    listed = _cli(redis_url, redis_prefix, "jobs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert steady(json.loads(listed.stdout)) == steady(client.get("/api/jobs", headers=_auth()).get_json())
    table = _cli(redis_url, redis_prefix, "jobs")
    assert prelabel_id in table.stdout and batch_id in table.stdout and "waiting for the Batch API" in table.stdout
    shown = _cli(redis_url, redis_prefix, "jobs", prelabel_id, "--json")
    detail = json.loads(shown.stdout)
    assert steady([{k: v for k, v in detail.items() if k not in ("failed_tasks", "failed_chunks")}]) == \
        steady([client.get(f"/api/jobs/{prelabel_id}", headers=_auth()).get_json()])
    assert detail["failed_tasks"] == {"4": f"bad_label: {XSS}"} and detail["failed_chunks"] == []
    assert _cli(redis_url, redis_prefix, "jobs", "nope").returncode == 2
    report = _cli(redis_url, redis_prefix, "report", "--project", "9", "--from-ledger")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == client.get("/api/projects/9/report", headers=_auth()).get_json()
    # cancel of a prelabel job from the terminal is the page's Cancel
    cancelled = _cli(redis_url, redis_prefix, "jobs", "cancel", prelabel_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert client.get(f"/api/jobs/{prelabel_id}", headers=_auth()).get_json()["state"] == "cancelled"
