"""The remainder of a "Retrieve predictions" click lives in RQ (REDIS_URL): a server SIGKILLed right
after answering loses nothing, a new server finishes and writes it; and exactly once under
overlap: a second click while the first click's job runs, a click overlapping `gemini-ls
prelabel`. Real Label Studio 1.23.2, real Redis, real worker processes, the emulator; every task
ends with exactly one prediction of the version and the emulator's counter shows no task was
predicted twice."""

from __future__ import annotations

import threading
import time

import pytest

from .helpers import backend_env, start_backend_process
from .jobs_helpers import gemini_ls, predictions_per_task, url_project, version_counts, wait_until
from .test_jobs_prelabel import job_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONCURRENCY = 2
CHUNK = 5


def durable_env(emu, ls, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return backend_env(emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=prefix, PREDICT_TIMEOUT="6",
                       GEMINI_CONCURRENCY=str(CONCURRENCY), JOB_HEARTBEAT="1", JOB_CHUNK=str(CHUNK), **extra)


def stored(ls, pid: int) -> int:
    return sum(version_counts(ls, pid).values())


def exactly_one_each(ls, pid: int, ids: list[int]) -> str:
    versions = {v: n for v, n in version_counts(ls, pid).items() if n}
    assert len(versions) == 1, versions
    (version,) = versions
    per_task = predictions_per_task(ls, pid, version)
    assert set(per_task) == set(ids)
    assert sorted(set(per_task.values())) == [1], {t: n for t, n in per_task.items() if n != 1}
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
        wait_until(lambda: stored(ls, pid) >= n, timeout=180, interval=1.0, what="every task holding a prediction")
        time.sleep(3)
        exactly_one_each(ls, pid, ids)
        assert calls(emu) == n, f"{calls(emu)} Gemini calls for {n} tasks: some task was predicted twice"
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
        cli.join(timeout=300)
        assert out["r"].returncode == 0, out["r"].stderr
        wait_until(lambda: stored(ls, pid) >= n, timeout=180, interval=1.0, what="every task holding a prediction")
        time.sleep(3)
        exactly_one_each(ls, pid, ids)
        assert calls(emu) == n, f"{calls(emu)} Gemini calls for {n} tasks: some task was predicted twice"
    finally:
        worker.stop()
        backend.stop()
