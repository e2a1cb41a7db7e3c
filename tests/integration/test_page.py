"""The jobs page and its JSON (web/, docs/page.md) on the real Flask app, a real redis-server and
the emulator: what the one job store holds is what /api/jobs and the page say; user content is
escaped; the headers, basic auth, read-only mode and the CSRF check hold."""

from __future__ import annotations

import base64
import time

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
    app = create_app(Settings(api_key=DEFAULT_API_KEY, base_url=emu.url))
    try:
        client = app.test_client()
        assert client.get("/api/jobs").get_json() == []
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
    assert "Project 9" in html and XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "75% → 25%" in html


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
