"""`gemini-ls prelabel` over a whole project with several `gemini-ls worker` processes on a real
Redis: one worker SIGKILLed mid-run and a new one started, every task still ends with exactly one
prediction of the version; a re-run makes no Gemini call; failed tasks are reported and re-queued."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from .helpers import EMULATOR_KEY, GEMINI_LS_BIN
from .jobs_helpers import exactly_one_each, gemini_ls, predictions_per_task, url_project, version_counts, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def job_env(emu, ls, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {
        "GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": EMULATOR_KEY, "FETCH_ALLOWLIST": "127.0.0.1",
        "LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.api_key, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
        "GEMINI_CONCURRENCY": "4", "JOB_CHUNK": "10", "JOB_HEARTBEAT": "1", "JOB_RETRIES": "3", "GEMINI_MAX_RETRIES": "1",
    }
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "LABEL_STUDIO_", "REDIS_"))}
    full.update(env)
    return subprocess.run([str(GEMINI_LS_BIN), *args], env=full, capture_output=True, text=True, timeout=timeout)


def job_summary(env, job_id: str) -> dict:
    out = run_cli(["jobs", job_id, "--json"], env, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_prelabel_300_tasks_3_workers_one_killed(label_studio, emulator_factory, cors_images, redis_url, redis_prefix):
    ls = label_studio
    emu = emulator_factory(latency=0.3)
    pid, ids = url_project(ls, cors_images, None, "e2e prelabel", 300)
    env = job_env(emu, ls, redis_url, redis_prefix)
    workers = [gemini_ls(f"worker-{i}", ["worker"], env) for i in range(3)]
    try:
        out = run_cli(["prelabel", "--project", str(pid), "--no-wait"], env)
        assert out.returncode == 0, out.stderr
        job_id = out.stdout.strip().splitlines()[-1]
        wait_until(lambda: job_summary(env, job_id)["done"] >= 40, timeout=120, what="40 tasks done")
        workers[0].kill()  # SIGKILL mid-run: its chunk is abandoned, RQ retries it elsewhere
        killed_at = job_summary(env, job_id)["done"]
        assert killed_at < 300, "the run finished before the kill: raise the emulator latency"
        workers.append(gemini_ls("worker-3", ["worker"], env))
        final = wait_until(lambda: (s := job_summary(env, job_id))["done"] >= 300 and s, timeout=240, what="all tasks done")
        assert final["failed"] == 0 and final["state"] == "done", final
        exactly_one_each(ls, pid, ids)
        calls = emu.counters()["requests"].get("generateContent", 0)
        assert calls >= 300

        # a re-run finds every task holding the version: nothing to do, no Gemini call
        again = run_cli(["prelabel", "--project", str(pid), "--quiet"], env)
        assert again.returncode == 0, again.stderr
        assert "0 tasks to predict" in again.stderr and "300 already hold it" in again.stderr, again.stderr
        time.sleep(1.0)
        assert emu.counters()["requests"].get("generateContent", 0) == calls
        print(f"killed a worker at {killed_at}/300 done; {calls} Gemini calls for 300 tasks")
    finally:
        for w in workers:
            w.stop()


def test_prelabel_reports_failed_tasks_and_retry_failed_requeues_them(
    label_studio, emulator_factory, cors_images, redis_url, redis_prefix
):
    ls = label_studio
    emu = emulator_factory()
    pid, ids = url_project(ls, cors_images, None, "e2e prelabel failures", 12)
    # two tasks whose image is gone: they fail (image_http_error) while the others are written
    broken = ids[:2]
    for tid in broken:
        ls.patch(f"/api/tasks/{tid}", {"data": {"image": cors_images.url(f"gone/{tid}.png")}})
    env = job_env(emu, ls, redis_url, redis_prefix, JOB_RETRIES="0", JOB_CHUNK="4")
    worker = gemini_ls("worker-failures", ["worker"], env)
    try:
        out = run_cli(["prelabel", "--project", str(pid), "--quiet"], env)
        assert out.returncode == 1, out.stderr
        assert "2 failed" in out.stderr and "image_" in out.stderr, out.stderr
        job_id = out.stdout.strip().splitlines()[-1]
        detail = job_summary(env, job_id)
        assert detail["done"] == 10 and sorted(int(t) for t in detail["failed_tasks"]) == broken
        assert detail["failed_chunks"] and all("failed" in c["reason"] for c in detail["failed_chunks"]), detail
        # the images come back; --retry-failed re-queues exactly those chunks
        for tid in broken:
            body = ls.get(f"/api/tasks/{ids[5]}")["data"]["image"]
            ls.patch(f"/api/tasks/{tid}", {"data": {"image": body}})
        calls = emu.counters()["requests"].get("generateContent", 0)
        retry = run_cli(["prelabel", "--retry-failed", job_id], env)
        assert retry.returncode == 0, retry.stderr
        assert f"job {job_id}: " in retry.stderr and "12/12" in retry.stderr, retry.stderr  # tqdm's bar
        assert re.search(r"task/s|s/task", retry.stderr), retry.stderr
        # only the two repaired tasks were predicted again (their chunk-mates are skipped: already written)
        assert emu.counters()["requests"].get("generateContent", 0) - calls == 2
        versions = {v: n for v, n in version_counts(ls, pid).items() if n}
        (version,) = versions
        assert sorted(set(predictions_per_task(ls, pid, version).values())) == [1]
    finally:
        worker.stop()
