"""A selection too large to finish inside PREDICT_TIMEOUT with the background write-back turned off
(WRITE_BACK=false; see test_jobs_oneclick.py for it on): what is done is stored, the rest is not
stored at all (not as empty predictions), and "Retrieve predictions" again fills exactly those."""

from __future__ import annotations

import time

import pytest

from .helpers import backend_env
from .project import RECT_CONFIG, Project, check_stored, make_project

pytestmark = pytest.mark.e2e

N_TASKS = 8
LATENCY = 1.5  # seconds per Gemini call (one call per task with a rectangles-only config)
CONCURRENCY = 2
PREDICT_TIMEOUT = 2.5  # -> 2 tasks finish in the first round, 6 are late


def test_late_tasks_are_not_stored_and_a_second_retrieve_fills_exactly_them(
    label_studio, emulator_factory, backend_factory_e2e, cors_images
):
    ls = label_studio
    emu = emulator_factory(latency=LATENCY)
    backend = backend_factory_e2e(
        "deadline",
        backend_env(emu.url, ls, PREDICT_TIMEOUT=str(PREDICT_TIMEOUT), GEMINI_CONCURRENCY=str(CONCURRENCY), WRITE_BACK="false"),
    )
    project: Project = make_project(
        ls, cors_images, backend.url, "e2e deadline", n_upload=2, n_url=N_TASKS - 2, broken=False, config=RECT_CONFIG
    )
    version = project.ml["model_version"]
    assert len(project.tasks) == N_TASKS

    # round 1: the whole selection, far more work than fits in PREDICT_TIMEOUT
    started = time.monotonic()
    reply = ls.retrieve_predictions(project.id)
    first_round = time.monotonic() - started
    assert reply["detail"] == f"Retrieved {N_TASKS} predictions"  # says so whatever happened
    assert first_round < PREDICT_TIMEOUT + 5, f"Label Studio waited {first_round:.1f} s"

    stored = {tid: ls.predictions(tid) for tid in project.tasks}
    done = {tid for tid, preds in stored.items() if preds}
    late = set(project.tasks) - done
    assert 1 <= len(done) < N_TASKS, f"done {len(done)} of {N_TASKS} in {first_round:.1f} s"
    assert late, "nothing was late: raise LATENCY or lower PREDICT_TIMEOUT"
    for tid in done:
        check_stored(ls, project.tasks[tid], version, RECT_CONFIG)
    for tid in late:
        assert stored[tid] == [], f"late task {tid} stored {stored[tid]}"  # not an empty prediction
    assert backend.metric("gemini_ls_tasks_total", outcome="late") == len(late)
    assert backend.metric("gemini_ls_tasks_total", outcome="empty") == 0
    backend.wait_log(r"\d+ of \d+ tasks not finished within PREDICT_TIMEOUT")  # one line per batch (issue 11)
    round1_ids = {tid: [p["id"] for p in stored[tid]] for tid in done}

    # Gemini gets fast again (the late tasks keep running in the backend meanwhile)
    emu.set_latency(0.0)
    ok_before = backend.metric("gemini_ls_tasks_total", outcome="ok")
    started = time.monotonic()
    ls.retrieve_predictions(project.id)
    second_round = time.monotonic() - started

    # Label Studio sent exactly the tasks without a prediction of this model version ...
    assert backend.metric("gemini_ls_tasks_total", outcome="ok") - ok_before == len(late)
    # ... and every task now holds exactly one prediction of it; round-1 ones are untouched
    for tid, truth in project.tasks.items():
        p = check_stored(ls, truth, version, RECT_CONFIG)
        if tid in round1_ids:
            assert [p["id"]] == round1_ids[tid]
    # Gemini was asked once per task: late tasks were finished, not started over
    assert emu.counters()["requests"].get("generateContent", 0) == N_TASKS
    print(f"round 1: {len(done)}/{N_TASKS} in {first_round:.2f} s; round 2: {len(late)} in {second_round:.2f} s")
