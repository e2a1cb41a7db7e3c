"""Label Studio -> our backend -> (emulated) Gemini -> predictions stored in Label Studio.

Runs twice: with the legacy API token and with a personal access token (legacy tokens disabled,
the Label Studio 1.23 default) as the backend's LABEL_STUDIO_API_KEY. Tests in this module share
one project per token mode and run in file order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
import requests

from .helpers import BackendProcess, backend_env, start_backend_process
from .project import LABEL_CONFIG, Project, check_result, check_stored, make_project

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    mode: str
    ls: object
    backend: BackendProcess
    project: Project
    model_version: str
    opened_task: int  # left out of the first "Retrieve predictions", predicted by opening it


@pytest.fixture(scope="module", params=["legacy", "pat"])
def stack(request, gemini_emulator, cors_images):
    mode = request.param
    ls = request.getfixturevalue("label_studio" if mode == "legacy" else "label_studio_pat")
    backend = start_backend_process(f"predictions-{mode}", backend_env(gemini_emulator.url, ls))
    try:
        project = make_project(ls, cors_images, backend.url, f"e2e {mode}")
        # the last good URL task is the one a user opens before any retrieve
        opened = max(t.task_id for t in project.good() if t.source == "url")
        yield Stack(mode, ls, backend, project, project.ml["model_version"], opened)
    finally:
        backend.stop()


def test_connecting_runs_health_and_setup(stack):
    ml = stack.ls.get(f"/api/ml/{stack.project.ml['id']}")
    assert ml["state"] == "CO", ml
    assert ml["error_message"] in (None, ""), ml
    # the model version Label Studio recorded is what our /setup answers for this label config
    r = requests.post(stack.backend.url + "/setup", json={"project": "1.1", "schema": LABEL_CONFIG}, timeout=10)
    assert r.status_code == 200, r.text
    assert stack.model_version and ml["model_version"] == r.json()["model_version"] == stack.model_version
    # Label Studio auto-created the project webhook pointing at our /webhook
    hooks = stack.ls.get(f"/api/webhooks?project={stack.project.id}")
    assert any(h["url"] == stack.backend.url + "/webhook" for h in hooks), hooks
    # nothing predicted yet
    for t in stack.project.tasks.values():
        assert stack.ls.predictions(t.task_id) == []


def test_retrieve_predictions_action(stack):
    ls, project = stack.ls, stack.project
    selected = [tid for tid in project.tasks if tid != stack.opened_task]
    started = time.monotonic()
    reply = ls.retrieve_predictions(project.id, selected)
    elapsed = time.monotonic() - started
    # the reply counts selected tasks, whatever was stored: never trust it, read /api/predictions
    assert reply["detail"] == f"Retrieved {len(selected)} predictions", reply
    for t in project.good():
        if t.task_id == stack.opened_task:
            assert ls.predictions(t.task_id) == []
            continue
        check_stored(ls, t, stack.model_version)
    assert {t.source for t in project.good() if t.task_id != stack.opened_task} == {"upload", "url"}
    print(f"[{stack.mode}] retrieve {len(selected)} tasks: {elapsed:.2f} s")


def test_broken_image_gets_no_prediction_and_a_reason(stack):
    (broken,) = stack.project.broken()
    assert stack.ls.predictions(broken.task_id) == []
    failed = stack.backend.metric("gemini_ls_tasks_total", outcome="failed")
    assert failed >= 1, stack.backend.metrics()
    reasons = {
        dict(labels).get("reason"): v
        for (name, labels), v in stack.backend.metrics().items()
        if name == "gemini_ls_task_failures_total" and v > 0
    }
    assert reasons, "no gemini_ls_task_failures_total sample > 0"
    assert any("image" in (r or "") or "decode" in (r or "") for r in reasons), reasons
    # our log names the task and says why
    line = stack.backend.wait_log(rf"[^\n]*task[^\n]*\b{broken.task_id}\b[^\n]*")
    assert any(w in line.lower() for w in ("image", "decode", "identify", "format")), line


def test_opening_a_task_predicts_it(stack):
    ls = stack.ls
    task = ls.get(f"/api/tasks/{stack.opened_task}")
    # the task view already carries the new prediction (show_collab_predictions is on by default)
    ours = [p for p in task["predictions"] if p["model_version"] == stack.model_version]
    assert len(ours) == 1, task["predictions"]
    check_stored(ls, stack.project.tasks[stack.opened_task], stack.model_version)


def test_interactive_single_task(stack):
    ls, project = stack.ls, stack.project
    upload = next(t for t in project.good() if t.source == "upload")
    before = ls.predictions(upload.task_id)
    # what the editor sends before the annotator has drawn anything: the whole task is predicted
    # (a drawn prompt gets the one object it points at: tests/e2e/test_interactive.py)
    reply = ls.interactive(project.ml["id"], upload.task_id, {})
    assert "errors" not in reply, reply
    data = reply["data"]
    assert data.get("model_version") in (None, stack.model_version), data
    check_result(data["result"], upload.scene)
    # interactive answers are shown, not stored
    assert ls.predictions(upload.task_id) == before


def test_retrieving_again_stores_nothing_new(stack):
    ls, project = stack.ls, stack.project
    before = {tid: [p["id"] for p in ls.predictions(tid)] for tid in project.tasks}
    ls.retrieve_predictions(project.id)  # all tasks
    for tid, ids in before.items():
        assert [p["id"] for p in ls.predictions(tid)] == ids, f"task {tid} changed"


def test_annotation_reaches_our_webhook(stack):
    ls, project, backend = stack.ls, stack.project, stack.backend
    task = next(t for t in project.good() if t.source == "upload")
    (pred,) = ls.predictions(task.task_id)
    # the annotator accepts the boxes, drops everything else
    result = [r for r in pred["result"] if r["from_name"] == "rect"]
    assert result
    before = backend.metric("gemini_ls_webhook_events_total", action="ANNOTATION_CREATED")
    ann = ls.post(f"/api/tasks/{task.task_id}/annotations", {"result": result, "parent_prediction": pred["id"]})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and backend.metric("gemini_ls_webhook_events_total", action="ANNOTATION_CREATED") <= before:
        time.sleep(0.2)
    assert backend.metric("gemini_ls_webhook_events_total", action="ANNOTATION_CREATED") == before + 1
    # ... and acted on it: matched the annotation against OUR prediction, read back from Label Studio
    # (gemini_ls_review_regions replaced the in-memory gemini_ls_feedback_regions_total: the ledger
    # is per label and idempotent, see docs/review-loop.md)
    line = backend.wait_log(rf"webhook ANNOTATION_CREATED: annotation {ann['id']} for task {task.task_id}[^\n]*")
    assert "no prediction of ours" not in line, line
    accepted = backend.metric("gemini_ls_review_regions", project=str(project.id), outcome="accepted")
    deleted = backend.metric("gemini_ls_review_regions", project=str(project.id), outcome="deleted")
    assert accepted == len(result), backend.metrics()
    assert deleted == len(pred["result"]) - len(result)  # every brush, polygon and choice result was dropped
