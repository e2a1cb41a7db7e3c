"""Odd protocol input costs its own request or task only (issue 11, cases 7-10).

7. a config needing more Gemini requests per task than MAX_REQUESTS_PER_TASK is refused up front;
8. a task id that is a list or an object costs nothing beyond that task (it was a 500 after all
   the Gemini work was paid for: the id was used as a dict key);
9. a label config that is not a string is a 400 naming the field (it was a 500);
10. `params.context = {}` (Label Studio's interactive call before anything is drawn) is interactive.
"""

from __future__ import annotations

import pytest

from tests.faults.common import (
    CONFIG,
    assert_alive,
    assert_good,
    good_task,
    predict,
    predict_response,
    url_task,
)
from tests.helpers import colour_labels, config


def _calls(emu) -> int:
    return emu.counters()["requests"].get("generateContent", 0)


def _rect(name: str, labels: str) -> str:
    return f'<RectangleLabels name="{name}" toName="image">{labels}</RectangleLabels>'


def test_config_needing_too_many_requests_is_refused_naming_the_controls(backend_factory, emu):
    """200 RectangleLabels with different labels: 200 sequential Gemini calls per task. Refused at
    /setup and /predict (default MAX_REQUESTS_PER_TASK=16) with the controls to merge, before any
    image is fetched or Gemini is called."""
    backend = backend_factory()
    assert backend.settings.max_requests_per_task == 16
    many = config(*(_rect(f"r{i}", f'<Label value="Thing{i}"/>') for i in range(200)))
    setup = backend.post("/setup", {"project": "1.1", "schema": many, "hostname": "", "access_token": ""})
    assert setup.status_code == 400, setup.text
    resp = predict_response(backend, [good_task(1)], label_config=many)
    assert resp.status_code == 400, resp.text
    for error in (setup.json()["error"], resp.json()["error"]):
        assert "200 Gemini requests per task" in error and "MAX_REQUESTS_PER_TASK=16" in error, error
        assert "merge 200 RectangleLabels on image ('r0', 'r1'" in error, error
        assert len(error) < 1000, "the message must stay readable"
    assert _calls(emu) == 0
    # the same 200 controls sharing one label set need one request: accepted and predicted
    shared = config(*(_rect(f"r{i}", colour_labels()) for i in range(200)))
    (entry,) = predict(backend, [good_task(2)], label_config=shared)
    assert "result" in entry and _calls(emu) == 1
    # the operator can raise the cap
    raised = backend_factory(MAX_REQUESTS_PER_TASK="300")
    ok = raised.post("/setup", {"project": "1.1", "schema": many, "hostname": "", "access_token": ""})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("odd_id", [[1, 2], {"a": 1}], ids=["list", "object"])
def test_task_id_of_the_wrong_type_costs_only_that_task(odd_id, backend_factory, emu):
    backend = backend_factory()
    odd = {"id": odd_id, "data": good_task(1)["data"]}
    odd_result, good = predict(backend, [odd, good_task(2)])
    assert_good(good, 2)
    assert_good(odd_result, 1)  # nothing wrong with its image: it is predicted like any other
    assert_alive(backend)
    (again,) = predict(backend, [good_task(3)])
    assert_good(again, 3)


@pytest.mark.parametrize("value", [12345, ["<View/>"], {"xml": "<View/>"}, True], ids=["number", "list", "object", "bool"])
def test_label_config_that_is_not_a_string_is_a_400_naming_the_field(value, backend_factory, emu):
    backend = backend_factory()
    resp = predict_response(backend, [good_task(1)], label_config=value)
    assert resp.status_code == 400, resp.text
    assert "'label_config' must be the label config XML as a string" in resp.json()["error"], resp.text
    setup = backend.post("/setup", {"project": "1.1", "schema": value, "hostname": "", "access_token": ""})
    assert setup.status_code == 400 and "'schema'" in setup.json()["error"], setup.text
    assert _calls(emu) == 0
    assert_alive(backend)


@pytest.mark.parametrize("field", ["hostname", "access_token"])
def test_setup_fields_of_the_wrong_type_are_a_400_naming_the_field(field, backend_factory, emu):
    backend = backend_factory()
    body = {"project": "1.1", "schema": CONFIG, "hostname": "", "access_token": "", field: 42}
    resp = backend.post("/setup", body)
    assert resp.status_code == 400 and f"'{field}' must be a string" in resp.json()["error"], resp.text
    assert_alive(backend)


def test_empty_context_is_an_interactive_call(backend_factory, emu, image_server):
    """Label Studio's interactive call with nothing drawn yet sends context {}: a failure is an HTTP
    error the annotator sees (as for any interactive call), not a batch entry."""
    backend = backend_factory()
    gone = image_server.add("/gone.png", b"no", status=404, content_type="text/plain")
    body = {"tasks": [url_task(7, gone)], "label_config": CONFIG, "params": {"context": {}}}
    resp = backend.post("/predict", body)
    assert resp.status_code == 422, resp.text
    assert "task 7" in resp.reason and "not found" in resp.reason.lower(), resp.reason
    body = {"tasks": [good_task(1)], "label_config": CONFIG, "params": {"context": {}}}
    resp = backend.post("/predict", body)
    assert resp.status_code == 200, resp.text
    assert_good(resp.json()["results"][0], 1)
    assert backend.metric("gemini_ls_predict_requests_total", mode="interactive") == 2
    assert backend.metric("gemini_ls_predict_requests_total", mode="batch") == 0
