"""`gemini-ls prelabel --project ID --batch` end to end: the real CLI process, the real Label Studio,
real Redis, the emulator's Batch API through the real google-genai SDK.

- 500 tasks in batch mode hold exactly the predictions the synchronous path makes for them, with
  the same model routing (masks to GEMINI_MASK_MODEL, choices to GEMINI_MODEL: one batch each).
- A process SIGKILLed after submitting, started again: no batch created twice, one prediction each;
  also when killed inside the second model's batches.create (the batch found by its display name).
- The mask model's batch EXPIRED, the other's SUCCEEDED: only the mask requests are asked again,
  the other regions are kept and each task is written once.
- 5 % per-request failures inside the batch: retried synchronously (all written), or with
  --no-sync-retry reported with their reason while every other task is written.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
import redis
import requests

from gemini_ls.backend import build_backend
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.modelversion import model_version_for
from gemini_ls.settings import Settings
from tests.fixtures.labelstudio import ARTIFACTS

from .helpers import GEMINI_LS_BIN
from .prelabel import (
    EMULATOR_KEY,
    make_batch_project,
    predictions_by_task,
    prelabel_env,
    run_prelabel,
    spawn_prelabel,
)
from .project import LABEL_CONFIG

MODEL, MASK_MODEL = Settings().model, Settings().mask_model  # the default routing: masks go to the mask model

pytestmark = pytest.mark.e2e


@pytest.fixture
def batch_emulator(emulator_factory):
    emu = emulator_factory()
    emu.batches.configure(pending_seconds=0.3)
    return emu


def _sync_predictions(emu, tasks: tuple[dict, ...], config: str) -> tuple[str, dict[int, dict]]:
    """What synchronous mode answers for these tasks: the SelectionRunner of /predict, in this process."""
    settings = Settings(api_key=EMULATOR_KEY, base_url=emu.url, fetch_allowlist=("127.0.0.1",), max_retries=2)
    backend = build_backend(settings)
    try:
        spec = parse_label_config(config, settings.defaults)
        version = backend.model_version(spec)
        out: dict[int, dict] = {}
        for start in range(0, len(tasks), 50):
            chunk = list(tasks[start : start + 50])
            for task, outcome in zip(chunk, backend.runner.run(chunk, spec, version, backend.fetch,
                                                                deadline=time.monotonic() + 300)):
                assert outcome.succeeded, (task, outcome)
                out[task["id"]] = outcome.to_response(version)
        return version, out
    finally:
        backend.runner.shutdown()


def _version(config: str) -> str:
    settings = Settings(api_key=EMULATOR_KEY)
    return model_version_for(settings, parse_label_config(config, settings.defaults), emulated=False)


def _one_each(ls, project, version: str) -> dict[int, dict]:
    stored = predictions_by_task(ls, project.id)
    ours = {}
    for tid in project.task_ids:
        mine = [p for p in stored[tid] if p["model_version"] == version]
        assert len(mine) == 1, f"task {tid}: {len(mine)} predictions of {version}"
        ours[tid] = mine[0]
    return ours


def test_500_tasks_in_batch_mode_equal_the_synchronous_predictions(label_studio, cors_images, batch_emulator,
                                                                    redis_url, redis_prefix):
    project = make_batch_project(label_studio, cors_images, "batch 500", LABEL_CONFIG, 500)
    env = prelabel_env(batch_emulator.url, label_studio, redis_url, redis_prefix)
    done = run_prelabel(env, project.id)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "500 of 500 task(s) written" in done.stderr, done.stderr[-3000:]
    assert "at the batch rate" in done.stderr

    counters = batch_emulator.counters()
    assert counters["batches"]["created"] == 2  # one per model: the default routing, as in sync mode
    assert counters["requests"]["batch.generateContent"] == 1000  # masks + choices per task
    assert {m: v["requests"] for m, v in counters["models"].items()} == {MASK_MODEL: 500, MODEL: 500}
    assert "generateContent" not in counters["requests"]  # nothing went synchronously
    assert f"to {MASK_MODEL}: 500 request(s)" in done.stderr and f"to {MODEL}: 500 request(s)" in done.stderr

    version, sync = _sync_predictions(batch_emulator, project.tasks, LABEL_CONFIG)
    stored = _one_each(label_studio, project, version)
    regions = 0
    for tid in project.task_ids:
        assert stored[tid]["result"] == sync[tid]["result"], f"task {tid}: batch and sync regions differ"
        assert stored[tid]["score"] == pytest.approx(sync[tid]["score"])
        regions += len(sync[tid]["result"])
    assert regions > 1000

    again = run_prelabel(env, project.id)  # everything holds a prediction of the version: nothing to do
    assert again.returncode == 0 and "0 task(s) to pre-label" in again.stderr, again.stderr[-2000:]
    assert batch_emulator.counters()["batches"]["created"] == 2


def test_killed_after_submit_resumes_without_resubmitting(label_studio, cors_images, batch_emulator,
                                                          redis_url, redis_prefix):
    project = make_batch_project(label_studio, cors_images, "batch kill", LABEL_CONFIG, 60)
    batch_emulator.batches.configure(pending_seconds=600)  # it stays PENDING until we say so
    env = prelabel_env(batch_emulator.url, label_studio, redis_url, redis_prefix)
    log = ARTIFACTS / "prelabel-kill.log"
    proc = spawn_prelabel(env, project.id, "--source", "file", log=log)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        key = f"{redis_prefix}job:batch:{project.id}:{_version(LABEL_CONFIG)}:batches"
        deadline = time.monotonic() + 120
        while r.hlen(key) < 2:  # both models' batches recorded
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no two batches recorded within 120 s"
            time.sleep(0.1)
        assert batch_emulator.counters()["batches"]["created"] == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        r.close()
    assert all(not preds for preds in predictions_by_task(label_studio, project.id).values())

    batch_emulator.batches.configure(pending_seconds=0.0)
    done = run_prelabel(env, project.id)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "submitted" not in done.stderr, done.stderr  # it polled the batches it had, it did not make one
    counters = batch_emulator.counters()
    assert counters["batches"]["created"] == 2
    assert counters["batches"]["downloads"] == 2  # each batch's JSONL results file
    _one_each(label_studio, project, _version(LABEL_CONFIG))


def test_killed_inside_the_second_batches_create_adopts_that_batch(label_studio, cors_images, batch_emulator,
                                                                   redis_url, redis_prefix):
    """The mask model's batch is recorded; the process dies while the other model's batches.create is
    in flight (the emulator creates it after the client is gone): the restart finds it by its display
    name and polls it; nothing is submitted again."""
    project = make_batch_project(label_studio, cors_images, "batch kill in create", LABEL_CONFIG, 30)
    batch_emulator.batches.configure(pending_seconds=600)
    batch_emulator.add_fault("latency", rate=1.0, args={"seconds": "4"}, routes=["batchGenerateContent"])
    env = prelabel_env(batch_emulator.url, label_studio, redis_url, redis_prefix)
    log = ARTIFACTS / "prelabel-kill-create.log"
    proc = spawn_prelabel(env, project.id, log=log)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    prefix = f"{redis_prefix}job:batch:{project.id}:{_version(LABEL_CONFIG)}:"
    try:
        deadline = time.monotonic() + 120
        while (r.hlen(prefix + "batches") < 1 or not r.get(prefix + "submitting")
               or batch_emulator.counters()["requests"].get("batchGenerateContent", 0) < 2):  # the 2nd create arrived
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the second batches.create did not start within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # the second create is inside the emulator's 4 s latency
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        r.close()
    deadline = time.monotonic() + 30
    while batch_emulator.counters()["batches"]["created"] < 2:  # the emulator finishes the create it was in
        assert time.monotonic() < deadline, batch_emulator.counters()["batches"]
        time.sleep(0.1)
    batch_emulator.clear_faults()
    batch_emulator.batches.configure(pending_seconds=0.0)
    done = run_prelabel(env, project.id)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "created before a restart" in done.stderr and "submitted" not in done.stderr, done.stderr[-3000:]
    assert batch_emulator.counters()["batches"]["created"] == 2
    _one_each(label_studio, project, _version(LABEL_CONFIG))


def test_one_models_batch_expired_asks_only_that_models_requests_again(label_studio, cors_images, batch_emulator,
                                                                       redis_url, redis_prefix):
    project = make_batch_project(label_studio, cors_images, "batch mask expired", LABEL_CONFIG, 40)
    batch_emulator.batches.configure(pending_seconds=0.0, end_state="EXPIRED", end_state_model=MASK_MODEL)
    env = prelabel_env(batch_emulator.url, label_studio, redis_url, redis_prefix)
    first = run_prelabel(env, project.id, "--max-rounds", "1")
    assert first.returncode == 1 and "failed (batch_unanswered): 40" in first.stderr, first.stderr[-3000:]
    assert all(not preds for preds in predictions_by_task(label_studio, project.id).values())  # half a task is not written
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        kept = r.hlen(f"{redis_prefix}job:batch:{project.id}:{_version(LABEL_CONFIG)}:parts")
    finally:
        r.close()
    assert kept == 40  # the choices' regions wait for the masks

    batch_emulator.batches.configure(end_state=None, end_state_model=None)
    done = run_prelabel(env, project.id)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"to {MASK_MODEL}: 40 request(s)" in done.stderr and f"to {MODEL}:" not in done.stderr, done.stderr[-3000:]
    counters = batch_emulator.counters()
    assert counters["batches"]["created"] == 3 and counters["batches"]["requests"] == 40 * 2 + 40
    assert counters["models"][MODEL]["requests"] == 40  # the choices were asked once
    version, sync = _sync_predictions(batch_emulator, project.tasks, LABEL_CONFIG)
    stored = _one_each(label_studio, project, version)
    for tid in project.task_ids:
        assert stored[tid]["result"] == sync[tid]["result"], f"task {tid}: batch and sync regions differ"


def test_per_request_failures_are_retried_synchronously(label_studio, cors_images, batch_emulator, redis_url, redis_prefix):
    project = make_batch_project(label_studio, cors_images, "batch faults retried", LABEL_CONFIG, 120)
    batch_emulator.add_fault("500", rate=0.05, routes=["batch.generateContent"])
    env = prelabel_env(batch_emulator.url, label_studio, redis_url, redis_prefix)
    done = run_prelabel(env, project.id)
    assert done.returncode == 0, done.stderr[-3000:]
    counters = batch_emulator.counters()
    failed_requests = counters["batches"]["failed_requests"]
    assert failed_requests > 0
    # each task with a failed request is asked again synchronously: both of its requests
    retried = counters["requests"]["generateContent"] // 2
    assert (failed_requests + 1) // 2 <= retried <= failed_requests
    said = re.findall(r"(\d+) task\(s\) had requests failed inside the batch; retrying them synchronously", done.stderr)
    assert sum(map(int, said)) == retried  # per batch read: one line for each model's batch with failures
    assert f"{retried} retried synchronously" in done.stderr
    _one_each(label_studio, project, _version(LABEL_CONFIG))


def test_per_request_failures_without_retry_are_reported(label_studio, cors_images, batch_emulator, redis_url, redis_prefix):
    project = make_batch_project(label_studio, cors_images, "batch faults reported", LABEL_CONFIG, 120)
    batch_emulator.add_fault("500", rate=0.05, routes=["batch.generateContent"])
    env = prelabel_env(batch_emulator.url, label_studio, redis_url, redis_prefix)
    done = run_prelabel(env, project.id, "--no-sync-retry")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "failed (batch_error):" in done.stderr
    assert "generateContent" not in batch_emulator.counters()["requests"]
    stored = predictions_by_task(label_studio, project.id)
    missing = sorted(tid for tid, preds in stored.items() if not preds)
    assert missing and all(len(p) == 1 for tid, p in stored.items() if tid not in missing)
    for tid in missing:
        assert f"task {tid}: batch_error: code 13" in done.stderr or len(missing) > 20
    assert f"{len(project.task_ids) - len(missing)} of {len(project.task_ids)} task(s) written" in done.stderr


def test_an_expired_batch_is_followed_by_one_of_only_what_is_missing(label_studio, cors_images, batch_emulator, redis_url,
                                                                      redis_prefix, backend_factory_e2e):
    project = make_batch_project(label_studio, cors_images, "batch expired", LABEL_CONFIG, 40)
    version = _version(LABEL_CONFIG)
    batch_emulator.batches.configure(pending_seconds=600, end_state="EXPIRED")
    env = prelabel_env(batch_emulator.url, label_studio, redis_url, redis_prefix)
    first = run_prelabel(env, project.id, "--no-wait")
    assert first.returncode == 0 and "still running" in first.stderr, first.stderr[-3000:]
    # meanwhile 15 tasks get their prediction of this version another way (a Retrieve click, say)
    early = project.task_ids[:15]
    label_studio.post(f"/api/projects/{project.id}/import/predictions",
                      [{"task": tid, "result": [], "model_version": version} for tid in early])
    batch_emulator.batches.configure(pending_seconds=0.0)
    deadline = time.monotonic() + 60
    while batch_emulator.counters()["batches"]["states"].get("EXPIRED") != 2:  # one batch per model
        assert time.monotonic() < deadline
        time.sleep(0.05)
    batch_emulator.batches.configure(end_state=None)

    done = run_prelabel(env, project.id)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ended EXPIRED" in done.stderr and "25 task(s) to pre-label" in done.stderr
    counters = batch_emulator.counters()["batches"]
    assert counters["created"] == 4 and counters["requests"] == 40 * 2 + 25 * 2  # the second round: only the 25 missing
    stored = _one_each(label_studio, project, version)
    assert all(stored[tid]["result"] == [] for tid in early)  # theirs, not overwritten nor doubled

    # the server's /metrics shows the job, though another process ran it
    backend = backend_factory_e2e("batch-metrics", {"GEMINI_BASE_URL": batch_emulator.url, "GEMINI_API_KEY": EMULATOR_KEY,
                                                    "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix})
    text = requests.get(backend.url + "/metrics", timeout=10).text
    job = f"batch:{project.id}:{version}"
    assert f'gemini_ls_batch_job_tasks{{job="{job}",outcome="written"}} 25.0' in text
    assert f'gemini_ls_batch_job_cost_usd{{job="{job}",rate="batch"}}' in text
    assert f'gemini_ls_batch_job_tokens{{direction="input",job="{job}"}}' in text


def test_jobs_cancel_stops_the_batch_and_prelabel_does_not_resubmit(label_studio, cors_images, batch_emulator, redis_url,
                                                                   redis_prefix):
    project = make_batch_project(label_studio, cors_images, "batch cancel", LABEL_CONFIG, 20)
    batch_emulator.batches.configure(pending_seconds=600)
    env = prelabel_env(batch_emulator.url, label_studio, redis_url, redis_prefix)
    assert run_prelabel(env, project.id, "--no-wait").returncode == 0
    job = f"batch:{project.id}:{_version(LABEL_CONFIG)}"
    jobs = subprocess.run([str(GEMINI_LS_BIN), "jobs"], env=env, capture_output=True, text=True, timeout=120)
    assert jobs.returncode == 0 and job in jobs.stdout and "waiting for the Batch API" in jobs.stdout, jobs.stdout + jobs.stderr
    cancel = subprocess.run([str(GEMINI_LS_BIN), "jobs", "cancel", job], env=env, capture_output=True, text=True, timeout=120)
    assert cancel.returncode == 0, cancel.stderr
    assert batch_emulator.counters()["batches"]["cancelled"] == 2  # one batch per model
    again = run_prelabel(env, project.id)
    assert again.returncode == 0 and "cancelled" in again.stderr, again.stderr[-2000:]
    assert batch_emulator.counters()["batches"]["created"] == 2
    assert all(not preds for preds in predictions_by_task(label_studio, project.id).values())
    bad = subprocess.run([str(GEMINI_LS_BIN), "jobs", "cancel", "nonsense"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "neither a job id" in bad.stderr


def test_batch_predictions_carry_the_learned_state_like_predict_answers(label_studio, cors_images, batch_emulator,
                                                                         redis_url, redis_prefix):
    """Learned thresholds and synonyms (review loop) apply to batch-written predictions too, under the
    same model_version as a /predict answer for the task."""
    from .helpers import backend_env, start_backend_process
    from .jobs_helpers import exactly_one_each, url_project
    from .test_jobs_durable import LEARN_CONFIG, _seed_learned_state, assert_written_equal_predict_answers

    learn = {"REVIEW_LEARN": "thresholds,synonyms", "REVIEW_LEARN_MIN_SAMPLES": "8"}
    pid, ids = url_project(label_studio, cors_images, None, "batch learned state", 12, config=LEARN_CONFIG)
    _seed_learned_state(redis_url, redis_prefix, pid)
    env = prelabel_env(batch_emulator.url, label_studio, redis_url, redis_prefix, **learn)
    done = run_prelabel(env, pid)
    assert done.returncode == 0, done.stderr[-3000:]
    version = exactly_one_each(label_studio, pid, ids)
    assert re.search(r"-l[0-9a-f]{8}$", version), version  # the learned state's digest
    plain = start_backend_process("batch-learned-plain", backend_env(
        batch_emulator.url, label_studio, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, WRITE_BACK="false",
        SERVE_WORKER="false", **learn))
    try:
        assert_written_equal_predict_answers(label_studio, plain.url, pid, ids, version)
    finally:
        plain.stop()
