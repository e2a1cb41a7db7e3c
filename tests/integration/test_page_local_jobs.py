"""Without REDIS_URL, the page lists this process's jobs: the remainder of a "Retrieve predictions"
click that the server finishes and writes to Label Studio itself (jobs/remainders.py) is a job of
its own store, on /api/jobs, /api/jobs/<id> and the page, with its progress and its failures. The
real Flask app, the real SDK against the emulator, Label Studio's write endpoints on a local HTTP
server (PREDICT_ANSWER_MAX=1: every result past the first goes through the API)."""

from __future__ import annotations

import json
import time

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY
from gemini_ls.server import create_app
from gemini_ls.settings import Settings
from tests.fixtures.servers import RecordedRequest, Reply
from tests.helpers import config, data_uri, rect_control

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
XSS = "<img src=x onerror=alert(1)>"
REFUSED = 4  # Label Studio refuses this task's prediction (400, quoting markup): a failure with a reason


def _label_studio(server) -> list[int]:
    imported: list[int] = []

    def versions(_req: RecordedRequest) -> Reply:
        return Reply(200, b"{}", "application/json")

    def import_predictions(req: RecordedRequest) -> Reply:
        items = json.loads(req.body)
        if any(int(i["task"]) == REFUSED for i in items):
            return Reply(400, json.dumps({"detail": f"task {REFUSED}: {XSS}"}).encode(), "application/json")
        imported.extend(int(i["task"]) for i in items)
        return Reply(201, json.dumps({"created": len(items)}).encode(), "application/json")

    server.add_handler("/api/projects/9/model-versions/", versions)
    server.add_handler("/api/projects/9/import/predictions", import_predictions)
    return imported


def test_a_click_remainder_is_listed_as_this_process_s_job(emu, image_server):
    imported = _label_studio(image_server)
    settings = Settings(api_key=DEFAULT_API_KEY, base_url=emu.url, label_studio_url=image_server.base_url,
                        label_studio_api_key="legacy-token-0123456789", predict_answer_max=1)
    app = create_app(settings)
    try:
        client = app.test_client()
        uri = data_uri(encode_image(make_scene(320, 240, 2, seed=4).image, "png"), "image/png")
        tasks = [{"id": i, "project": 9, "data": {"image": uri}} for i in range(1, 6)]
        before = {j["id"] for j in client.get("/api/jobs").get_json()}
        resp = client.post("/predict", json={"tasks": tasks, "label_config": config(rect_control()), "project": "9.1795504334"})
        assert resp.status_code == 200
        answered = [t["id"] for t, r in zip(tasks, resp.get_json()["results"]) if r.get("result")]
        assert len(answered) == 1  # the rest goes through Label Studio's API
        deadline = time.monotonic() + 30
        while True:
            (job,) = [j for j in client.get("/api/jobs").get_json() if j["id"] not in before]
            if job["done"] + job["failed"] == job["total"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (job["kind"], job["project"], job["total"], job["done"], job["failed"]) == ("prelabel", "9", 4, 3, 1)
        assert job["state"] == "failed" and not job["can_cancel"] and not job["can_retry"]
        assert job["model_version"].startswith("gemini-ls-") and list(job["failed_by_reason"]) == ["write_back"]
        assert sorted(imported) == sorted(t["id"] for t in tasks if t["id"] != REFUSED and t["id"] != answered[0])
        detail = client.get(f"/api/jobs/{job['id']}").get_json()
        assert list(detail["failures"]) == [str(REFUSED)] and XSS in detail["failures"][str(REFUSED)]
        html = client.get("/", headers=HTML).get_data(as_text=True)
        assert job["id"] in html and "this process lists its own" in html
        assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
        assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 403  # read-only without basic auth
    finally:
        app.extensions["gemini_ls"].runner.shutdown()
