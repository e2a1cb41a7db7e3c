"""The remainder of a "Retrieve predictions" click lives in RQ (REDIS_URL): a server SIGKILLed right
after answering loses nothing, a new server finishes and writes it; and exactly once under
overlap: a second click while the first click's job runs, a click overlapping `gemini-ls
prelabel`. Real Label Studio 1.23.2, real Redis, real worker processes, the emulator; every task
ends with exactly one prediction of the version and the emulator's counter shows no task was
predicted twice."""

from __future__ import annotations

import re
import threading
import time

import pytest

from tests.helpers import config

from .helpers import backend_env, start_backend_process
from .jobs_helpers import exactly_one_each, gemini_ls, url_project, version_counts, wait_until
from .test_jobs_prelabel import job_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONCURRENCY = 2
CHUNK = 5


def durable_env(emu, ls, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return backend_env(emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=prefix, PREDICT_TIMEOUT="6",
                       GEMINI_CONCURRENCY=str(CONCURRENCY), JOB_HEARTBEAT="1", JOB_CHUNK=str(CHUNK), **extra)


def stored(ls, pid: int) -> int:
    return sum(version_counts(ls, pid).values())


def settle_exactly_once(ls, emu, pid: int, ids: list[int]) -> str:
    """Wait for every task to hold a prediction, give a late duplicate time to show, then: exactly
    one each, and one Gemini call per task (no task predicted twice)."""
    wait_until(lambda: stored(ls, pid) >= len(ids), timeout=180, interval=1.0, what="every task holding a prediction")
    time.sleep(3)
    version = exactly_one_each(ls, pid, ids)
    assert calls(emu) == len(ids), f"{calls(emu)} Gemini calls for {len(ids)} tasks: some task was predicted twice"
    return version


def calls(emu) -> int:
    return emu.counters()["requests"].get("generateContent", 0)


def test_a_click_survives_its_server_killed_after_answering(label_studio, emulator_factory, cors_images, redis_url,
                                                            redis_prefix):
    ls = label_studio
    n = 40
    emu = emulator_factory(latency=1.0)
    env = durable_env(emu, ls, redis_url, redis_prefix)
    first = start_backend_process("durable-a", env)
    second = None
    try:
        pid, ids = url_project(ls, cors_images, first.url, "e2e durable click", n)
        reply = ls.retrieve_predictions(pid, timeout=120)  # answered at PREDICT_TIMEOUT=6 s
        assert reply["detail"] == f"Retrieved {n} predictions"
        first.wait_log(r"one-click: job \S+ on the RQ queue finishes \d+ tasks", timeout=10)
        first.kill()  # the server and its embedded worker, SIGKILL: nothing graceful
        at_kill = stored(ls, pid)
        assert at_kill < n, "everything was stored before the kill: raise the emulator latency"
        second = start_backend_process("durable-b", env)  # its embedded worker works the same queue
        wait_until(lambda: stored(ls, pid) >= n, timeout=180, interval=1.0, what="every task holding a prediction")
        time.sleep(3)  # a late duplicate would show up now
        exactly_one_each(ls, pid, ids)
        made = calls(emu)
        # what the killed processes had in flight (its pool, its worker's chunk) may be asked again, nothing more
        assert n <= made <= n + CONCURRENCY + CHUNK, made
        print(f"{at_kill}/{n} stored when the server was killed; {made} Gemini calls for {n} tasks")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_two_clicks_over_the_same_selection_while_the_first_clicks_job_runs(
    label_studio, emulator_factory, cors_images, redis_url, redis_prefix
):
    ls = label_studio
    n = 40
    emu = emulator_factory(latency=1.0)
    backend = start_backend_process("durable-twice", durable_env(emu, ls, redis_url, redis_prefix))
    try:
        pid, ids = url_project(ls, cors_images, backend.url, "e2e two clicks", n)
        ls.retrieve_predictions(pid, timeout=120)
        backend.wait_log(r"one-click: job \S+ on the RQ queue", timeout=10)
        assert stored(ls, pid) < n
        second = ls.retrieve_predictions(pid, timeout=120)  # the job is still running
        assert second["detail"].startswith("Retrieved"), second
        # the overlap was real: the second click found tasks held by the first click's job
        assert backend.metric("gemini_ls_tasks_total", outcome="claimed") > 0
        settle_exactly_once(ls, emu, pid, ids)
    finally:
        backend.stop()


def test_a_click_overlapping_prelabel(label_studio, emulator_factory, cors_images, redis_url, redis_prefix):
    ls = label_studio
    n = 60
    emu = emulator_factory(latency=1.0)
    env = durable_env(emu, ls, redis_url, redis_prefix)
    backend = start_backend_process("durable-prelabel", env)
    worker = gemini_ls("durable-prelabel-worker", ["worker"], job_env(emu, ls, redis_url, redis_prefix,
                                                                        GEMINI_CONCURRENCY=str(CONCURRENCY),
                                                                        JOB_CHUNK=str(CHUNK)))
    try:
        pid, ids = url_project(ls, cors_images, backend.url, "e2e click and prelabel", n)
        out: dict = {}
        cli = threading.Thread(target=lambda: out.update(r=run_cli(
            ["prelabel", "--project", str(pid), "--quiet"],
            job_env(emu, ls, redis_url, redis_prefix, GEMINI_CONCURRENCY=str(CONCURRENCY), JOB_CHUNK=str(CHUNK)),
        )))
        cli.start()
        wait_until(lambda: calls(emu) >= 4, timeout=60, interval=0.2, what="the prelabel job predicting")
        ls.retrieve_predictions(pid, timeout=120)  # over the whole project, while the job runs
        # the overlap was real: the click found tasks the prelabel job held
        assert backend.metric("gemini_ls_tasks_total", outcome="claimed") > 0
        cli.join(timeout=300)
        assert out["r"].returncode == 0, out["r"].stderr
        settle_exactly_once(ls, emu, pid, ids)
    finally:
        worker.stop()
        backend.stop()


# "Kitten" is never drawn: only the learned synonym answers it
LEARN_CONFIG = config('<RectangleLabels name="rect" toName="image"><Label value="Cat" hint="red square"/>'
                      '<Label value="Dog" hint="blue circle"/><Label value="Kitten" hint="green triangle"/></RectangleLabels>')


def _seed_learned_state(redis_url: str, prefix: str, project: int) -> None:
    """What annotators did before, in the review ledger: every "Cat" relabelled "Kitten" (a learned
    synonym), every "Dog" deleted (a learned threshold that suppresses it)."""
    import redis

    from gemini_ls.review.ledger import Contribution, RedisLedger, Sample
    from gemini_ls.review.stats import tally

    samples = tuple([Sample("Cat", "relabelled", 0.9, "Kitten")] * 8 + [Sample("Dog", "deleted", 0.9)] * 8)
    RedisLedger(redis.Redis.from_url(redis_url), prefix).replace(
        1, Contribution(1, project, 0, "earlier-version", tally(()), samples))


def _regions(result) -> list:
    return sorted((r["value"]["rectanglelabels"][0], round(r["value"]["x"], 3), round(r["value"]["y"], 3),
                   round(r["value"]["width"], 3), round(r["value"]["height"], 3), r.get("score")) for r in result)


def assert_written_equal_predict_answers(ls, predict_url: str, pid: int, ids: list[int], version: str) -> None:
    """Each task's stored prediction of `version` equals, region by region, what /predict answers for
    it, and the learned state really is in both: Cat answered as Kitten, Dog suppressed."""
    import requests

    written = {p["task"]: p["result"] for p in ls.get(f"/api/predictions?project={pid}") if p["model_version"] == version}
    tasks = {t["id"]: t for t in ls.tasks(pid)}
    for tid in ids:
        body = {"tasks": [{"id": tid, "data": tasks[tid]["data"], "project": pid}], "label_config": LEARN_CONFIG,
                "project": f"{pid}.1795504334"}
        answer = requests.post(predict_url + "/predict", json=body, timeout=60).json()
        assert answer["model_version"] == version
        (entry,) = answer["results"]
        assert _regions(entry["result"]) == _regions(written[tid]), tid
        assert {r[0] for r in _regions(written[tid])} == {"Kitten"}, written[tid]


def test_job_written_predictions_and_predict_answers_agree_under_learned_state(
    label_studio, emulator_factory, cors_images, redis_url, redis_prefix
):
    """Learned thresholds and synonyms are applied on every path: the /predict answer, the late
    tasks of a click written back, its remainder done by a worker, and `gemini-ls prelabel`."""

    ls = label_studio
    n = 30
    emu = emulator_factory(latency=1.0)
    learn = {"REVIEW_LEARN": "thresholds,synonyms", "REVIEW_LEARN_MIN_SAMPLES": "8"}
    env = durable_env(emu, ls, redis_url, redis_prefix, **learn)
    backend = start_backend_process("learned-click", env)
    plain = start_backend_process("learned-plain", {**env, "WRITE_BACK": "false", "SERVE_WORKER": "false"})
    worker = gemini_ls("learned-worker", ["worker"], job_env(emu, ls, redis_url, redis_prefix, **learn,
                                                               GEMINI_CONCURRENCY=str(CONCURRENCY), JOB_CHUNK=str(CHUNK)))
    try:
        pid, ids = url_project(ls, cors_images, None, "e2e learned state", n, config=LEARN_CONFIG)
        _seed_learned_state(redis_url, redis_prefix, pid)  # before Label Studio's /setup asks for the version
        ls.connect_ml_backend(pid, backend.url, title="gemini")
        pre = run_cli(["prelabel", "--project", str(pid), "--tasks", ",".join(map(str, ids[:8])), "--quiet"],
                      job_env(emu, ls, redis_url, redis_prefix, **learn, GEMINI_CONCURRENCY=str(CONCURRENCY)))
        assert pre.returncode == 0, pre.stderr
        ls.retrieve_predictions(pid, timeout=120)
        backend.wait_log(r"one-click: job \S+ on the RQ queue", timeout=10)
        wait_until(lambda: stored(ls, pid) >= n, timeout=180, interval=1.0, what="every task holding a prediction")
        version = exactly_one_each(ls, pid, ids)
        assert re.search(r"-l[0-9a-f]{8}$", version), version  # the learned state's digest
        assert_written_equal_predict_answers(ls, plain.url, pid, ids, version)
    finally:
        worker.stop()
        plain.stop()
        backend.stop()
