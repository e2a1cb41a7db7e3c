"""Label-config faults: a config that cannot drive predictions is a clear 400 for that request
(no task can be predicted without it); a config whose labels Gemini never returns is not an
error: every task gets `result: []`, which Label Studio stores."""

from __future__ import annotations

import logging

import pytest

from tests.faults.common import CONFIG, assert_alive, assert_good, good_task, predict, predict_response
from tests.helpers import config, rect_control

BAD_CONFIGS = {
    "empty": ("", "empty"),
    "blank": ("   \n", "empty"),
    "invalid_xml": ("<View><Image name='image' value='$image'><RectangleLabels", "not valid"),
    "not_xml": ("just some text", "not valid"),
    "no_image_object": (
        '<View><Text name="text" value="$text"/><Labels name="l" toName="text"><Label value="A"/></Labels></View>',
        "no <Image>",
    ),
    "no_image_control": ('<View><Image name="image" value="$image"/></View>', "no image control"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_label_config_is_a_clear_400_and_the_next_batch_works(case, backend_factory, emu, caplog):
    caplog.set_level(logging.INFO)
    backend = backend_factory()
    label_config, words = BAD_CONFIGS[case]
    resp = predict_response(backend, [good_task(1), good_task(2)], label_config=label_config)
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["status"] == "error" and "label config" in body["error"] and words in body["error"], body
    setup = backend.post("/setup", {"project": "7.1", "schema": label_config, "hostname": "", "access_token": ""})
    assert setup.status_code == 400 and words in setup.json()["error"], setup.text
    assert emu.counters()["requests"].get("generateContent", 0) == 0
    assert_alive(backend)
    (entry,) = predict(backend, [good_task(3)])
    assert_good(entry, 3)


def test_missing_label_config_is_a_clear_400(backend_factory, emu):
    backend = backend_factory()
    resp = predict_response(backend, [good_task(1)], label_config=None)
    assert resp.status_code == 400 and "label config" in resp.json()["error"], resp.text
    assert_alive(backend)


def test_bad_label_config_is_logged(backend_factory, emu, caplog):
    """An operator reading the logs sees why a project gets no predictions."""
    caplog.set_level(logging.INFO)
    backend = backend_factory()
    resp = predict_response(backend, [good_task(1)], label_config=BAD_CONFIGS["no_image_object"][0])
    assert resp.status_code == 400
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("gemini_ls") and r.levelno >= logging.WARNING and "label config" in r.getMessage()
    ]
    assert lines, f"a rejected label config left no warning in the log: {caplog.text}"


def test_labels_gemini_never_returns_give_empty_results(backend_factory, emu):
    """Labels no object in the picture matches: `result: []` (stored: Label Studio won't ask again)."""
    backend = backend_factory()
    nothing = config(
        '<RectangleLabels name="rect" toName="image">'
        '<Label value="Giraffe" hint="giraffes"/><Label value="Submarine" hint="submarines"/>'
        "</RectangleLabels>"
    )
    results = predict(backend, [good_task(1), good_task(2)], label_config=nothing)
    for entry in results:
        assert entry["result"] == [], entry
    assert backend.metric("gemini_ls_tasks_total", outcome="empty") == 2
    assert backend.metric("gemini_ls_tasks_total", outcome="failed") == 0
    # a config mixing found and never-found labels: the found ones come back with their geometry
    mixed = config(
        rect_control().replace("</RectangleLabels>", '<Label value="Giraffe" hint="giraffes"/></RectangleLabels>')
    )
    (entry,) = predict(backend, [good_task(3)], label_config=mixed)
    assert_good(entry, 3)
    assert all(r["value"]["rectanglelabels"] != ["Giraffe"] for r in entry["result"])
    (entry,) = predict(backend, [good_task(4)], label_config=CONFIG)
    assert_good(entry, 4)
    assert_alive(backend)
