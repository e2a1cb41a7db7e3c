"""Failure paths as a Label Studio user meets them."""

from __future__ import annotations

import re
import time

import pytest

from .helpers import backend_env
from .project import RECT_CONFIG, make_project

pytestmark = pytest.mark.e2e

CONTEXT = {"result": [{"from_name": "rect", "to_name": "image", "type": "rectanglelabels",
                       "value": {"x": 1, "y": 1, "width": 98, "height": 98, "rectanglelabels": ["Cat"]}}]}


def _failure_reasons(backend) -> dict[str, float]:
    return {
        dict(labels).get("reason"): v
        for (name, labels), v in backend.metrics().items()
        if name == "gemini_ls_task_failures_total" and v > 0
    }


def test_wrong_label_studio_api_key(label_studio, gemini_emulator, backend_factory_e2e, cors_images):
    ls = label_studio
    backend = backend_factory_e2e(
        "wrong-key", backend_env(gemini_emulator.url, ls, LABEL_STUDIO_API_KEY="not-the-right-token-0123456789")
    )
    project = make_project(ls, cors_images, backend.url, "e2e wrong key", n_upload=1, n_url=0, broken=False, config=RECT_CONFIG)
    (task,) = project.tasks.values()
    assert task.image.startswith("/data/upload/")

    # Interactive mode: Label Studio shows the annotator the error it got from us
    started = time.monotonic()
    reply = ls.interactive(project.ml["id"], task.task_id, CONTEXT)
    assert time.monotonic() - started < 30
    assert "errors" in reply, reply
    shown = " ".join(reply["errors"])
    assert "LABEL_STUDIO_API_KEY" in shown, f"Label Studio shows: {shown!r}"
    assert "401" in shown or "refused" in shown.lower(), shown

    # "Retrieve predictions": nothing stored (in particular no empty prediction) ...
    ls.retrieve_predictions(project.id)
    assert ls.predictions(task.task_id) == []
    # ... and our log and /metrics say why
    line = backend.wait_log(rf"[^\n]*task {task.task_id}\b[^\n]*LABEL_STUDIO_API_KEY[^\n]*")
    assert "401" in line, line
    assert "not-the-right-token" not in backend.log_text()  # the key itself is never logged
    assert any("unauthorized" in r or "auth" in r for r in _failure_reasons(backend)), _failure_reasons(backend)


def test_gemini_down_gives_a_clear_error_not_a_hang(label_studio, emulator_factory, backend_factory_e2e, cors_images):
    ls = label_studio
    emu = emulator_factory()
    dead_url = emu.url
    emu.stop()  # nothing listens there any more
    predict_timeout = 8.0
    backend = backend_factory_e2e(
        "gemini-down",
        backend_env(dead_url, ls, PREDICT_TIMEOUT=str(predict_timeout), GEMINI_MAX_RETRIES="2", GEMINI_TIMEOUT="3"),
    )
    project = make_project(ls, cors_images, backend.url, "e2e gemini down", n_upload=1, n_url=1, broken=False, config=RECT_CONFIG)
    upload = next(t for t in project.tasks.values() if t.source == "upload")

    started = time.monotonic()
    reply = ls.interactive(project.ml["id"], upload.task_id, CONTEXT)
    elapsed = time.monotonic() - started
    assert elapsed < predict_timeout + 5, f"interactive call took {elapsed:.1f} s"
    assert "errors" in reply, reply
    shown = " ".join(reply["errors"])
    assert re.search(r"gemini", shown, re.I), f"Label Studio shows: {shown!r}"

    started = time.monotonic()
    ls.retrieve_predictions(project.id)
    elapsed = time.monotonic() - started
    assert elapsed < predict_timeout + 5, f"Retrieve predictions took {elapsed:.1f} s (Label Studio waits up to 100 s)"
    for t in project.tasks.values():
        assert ls.predictions(t.task_id) == []
    reasons = _failure_reasons(backend)
    assert any(r.startswith("gemini") for r in reasons), reasons
    backend.wait_log(r"task \d+ failed \(gemini[^\n]*")


def test_gemini_hanging_is_cut_at_predict_timeout(label_studio, emulator_factory, backend_factory_e2e, cors_images):
    ls = label_studio
    emu = emulator_factory(latency=60.0)  # Gemini accepts the call and never answers in time
    predict_timeout = 3.0
    backend = backend_factory_e2e(
        "gemini-hangs", backend_env(emu.url, ls, PREDICT_TIMEOUT=str(predict_timeout), GEMINI_TIMEOUT="30")
    )
    project = make_project(ls, cors_images, backend.url, "e2e gemini hangs", n_upload=1, n_url=0, broken=False, config=RECT_CONFIG)
    (task,) = project.tasks.values()

    started = time.monotonic()
    reply = ls.interactive(project.ml["id"], task.task_id, CONTEXT)
    elapsed = time.monotonic() - started
    assert elapsed < predict_timeout + 5, f"interactive call took {elapsed:.1f} s"
    assert "errors" in reply, reply
    assert "PREDICT_TIMEOUT" in " ".join(reply["errors"]), reply
    started = time.monotonic()
    ls.retrieve_predictions(project.id)
    assert time.monotonic() - started < predict_timeout + 5
    assert ls.predictions(task.task_id) == []
