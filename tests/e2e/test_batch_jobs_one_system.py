"""One job system: a `gemini-ls prelabel --batch` job, a "Retrieve predictions" click and a
`gemini-ls prelabel` (RQ, the server's embedded worker) over the same tasks at once, on the real
Label Studio, real Redis and the emulator's Batch API through the real google-genai SDK.

The batch job starts first and claims its 30 tasks when it puts them into its batch (which the
emulator keeps PENDING); then 10 more tasks are imported and the click and the synchronous prelabel
run at once over all 40. The 30 are left to the batch job by both (the click's log says a Batch API
job holds them), the 10 new ones are predicted once by whichever of the two claims each first; the
batch then ends and writes its 30. Every task ends with exactly one prediction of the version, and
Gemini is asked once per task: generateContent tasks + batch requests == 40.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import redis

from gemini_ls.emulator.scenes import encode_image, make_scene
from tests.fixtures.labelstudio import ARTIFACTS

from .helpers import backend_env
from .jobs_helpers import exactly_one_each, url_project, wait_until
from .prelabel import prelabel_env, run_prelabel, spawn_prelabel
from .test_jobs_prelabel import job_env, job_summary, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N_BATCH, N_NEW = 30, 10


def test_batch_job_click_and_prelabel_over_the_same_tasks_ask_gemini_once_per_task(
        label_studio, emulator_factory, backend_factory_e2e, cors_images, redis_url, redis_prefix):
    ls = label_studio
    emu = emulator_factory(latency=0.2)
    emu.batches.configure(pending_seconds=600)  # PENDING until the click and the prelabel are done
    backend = backend_factory_e2e("batch-one-system", backend_env(
        emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, JOB_HEARTBEAT="1"))
    pid, first_ids = url_project(ls, cors_images, backend.url, "batch one job system", N_BATCH)

    log = ARTIFACTS / "batch-one-system.log"
    batch = spawn_prelabel(prelabel_env(emu.url, ls, redis_url, redis_prefix), pid, log=log)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        def batch_recorded() -> bool:
            assert batch.poll() is None, log.read_text()[-3000:]
            return any(r.hlen(k) for k in r.scan_iter(f"{redis_prefix}job:batch:{pid}:*:batches"))

        wait_until(batch_recorded, timeout=120, interval=0.1, what="the batch job's batch recorded")
        holders = [r.get(k) for k in r.scan_iter(f"{redis_prefix}claim:{pid}:*")]
        assert len(holders) == N_BATCH and all(h.startswith(f"batch:{pid}:") for h in holders), holders  # the job's id

        # 10 more tasks, then a click and a synchronous prelabel over all 40 at once
        more = [{"image": cors_images.add(f"p{pid}/new-{i}.png", encode_image(
            make_scene(320, 240, names=["red square", "blue circle"], seed=50 + i).image, "png"), "image/png")}
                for i in range(N_NEW)]
        ls.request("POST", f"/api/projects/{pid}/import", json=more, expect=201)
        ids = sorted(t["id"] for t in ls.tasks(pid))
        assert len(ids) == N_BATCH + N_NEW
        replies: dict[str, object] = {}

        def click() -> None:
            replies["click"] = ls.retrieve_predictions(pid, timeout=300)

        clicker = threading.Thread(target=click)
        clicker.start()
        sync = run_cli(["prelabel", "--project", str(pid), "--quiet"], job_env(emu, ls, redis_url, redis_prefix))
        clicker.join(timeout=300)
        assert sync.returncode == 0, sync.stderr[-3000:]
        assert replies["click"]["detail"] == f"Retrieved {N_BATCH + N_NEW} predictions", replies  # type: ignore[index]
        left = re.search(r"(\d+) written by another holder", sync.stderr)
        assert left and int(left.group(1)) >= N_BATCH, sync.stderr[-3000:]  # the batch's 30 (and what the click held)
        backend.wait_log(rf"{N_BATCH} tasks of project {pid} are held by Batch API job\(s\) batch:{pid}:", timeout=30)
        wait_until(lambda: sum(1 for t in ls.tasks(pid) if t.get("predictions")) >= N_NEW, timeout=120,
                   what="the 10 new tasks written")
        assert emu.counters()["batches"]["requests"] == N_BATCH  # nothing of the new tasks went into a batch

        emu.batches.configure(pending_seconds=0.0)
        batch.wait(timeout=300)
        out = log.read_text()
        assert batch.returncode == 0, out[-3000:]
        assert f"{N_BATCH} of {N_BATCH} task(s) written" in out, out[-3000:]
    finally:
        if batch.poll() is None:
            batch.kill()
        r.close()

    time.sleep(1.0)  # nothing is still on its way
    exactly_one_each(ls, pid, ids)
    counters = emu.counters()
    synchronous = counters["requests"].get("generateContent", 0)
    assert (synchronous, counters["batches"]["requests"]) == (N_NEW, N_BATCH), counters
    assert synchronous + counters["batches"]["requests"] == len(ids)  # each task asked of Gemini exactly once
    assert set(first_ids) < set(ids)


def test_cancel_of_a_batch_job_releases_its_claims_so_a_click_fills_its_tasks(
        label_studio, emulator_factory, backend_factory_e2e, cors_images, redis_url, redis_prefix):
    """A `prelabel --batch --no-wait` job holds its 12 tasks while its batch is PENDING; `gemini-ls jobs`
    lists it with a `gemini-ls prelabel` job in one table; `gemini-ls jobs cancel` cancels the batch at
    the Batch API and releases the claims, and the next click predicts and fills all 12 at once."""
    n = 12
    ls = label_studio
    emu = emulator_factory(latency=0.05)
    emu.batches.configure(pending_seconds=600)  # it never ends on its own within the test
    backend = backend_factory_e2e("batch-cancel-click", backend_env(
        emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, JOB_HEARTBEAT="1"))
    pid, ids = url_project(ls, cors_images, backend.url, "batch cancel then click", n)
    env = prelabel_env(emu.url, ls, redis_url, redis_prefix)
    first = run_prelabel(env, pid, "--no-wait")
    assert first.returncode == 0 and "still running" in first.stderr, first.stderr[-3000:]
    found = re.search(rf"(batch:{pid}:\S+): waiting", first.stderr)
    assert found, first.stderr[-3000:]
    job = found.group(1)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        holders = [r.get(k) for k in r.scan_iter(f"{redis_prefix}claim:{pid}:*")]
        assert len(holders) == n and set(holders) == {job}, holders
        sync = run_cli(["prelabel", "--project", str(pid), "--no-wait", "--quiet"], job_env(emu, ls, redis_url, redis_prefix))
        assert sync.returncode == 0, sync.stderr[-3000:]
        rq_job = sync.stdout.strip().splitlines()[-1]
        wait_until(lambda: job_summary(env, rq_job)["skipped"] >= n, timeout=120,
                   what="the RQ job leaving every task to the batch job")  # the server's embedded worker ran it
        listed = run_cli(["jobs"], env, timeout=60)
        assert listed.returncode == 0, listed.stderr
        table = [line for line in listed.stdout.splitlines() if line and not line.startswith(" ")]
        assert sum(1 for line in table if line.startswith("job ")) == 1, listed.stdout  # one table for both kinds
        kinds = {line.split()[0]: line.split()[1] for line in table[1:]}
        assert kinds[job] == "batch" and kinds[rq_job] == "prelabel", listed.stdout
        assert "waiting for the Batch API" in listed.stdout

        cancel = run_cli(["jobs", "cancel", job], env, timeout=120)
        assert cancel.returncode == 0 and f"{n} claim(s) released" in cancel.stderr, cancel.stderr[-3000:]
        assert emu.counters()["batches"]["cancelled"] >= 1
        wait_until(lambda: not [k for k in r.scan_iter(f"{redis_prefix}claim:{pid}:*") if r.get(k) == job],
                   timeout=30, what="the batch job's claims released")
    finally:
        r.close()
    reply = ls.retrieve_predictions(pid, timeout=300)
    assert reply["detail"] == f"Retrieved {n} predictions", reply
    wait_until(lambda: sum(1 for t in ls.tasks(pid) if t.get("predictions")) >= n, timeout=120,
               what="every task filled by the click")
    time.sleep(1.0)  # nothing is still on its way
    exactly_one_each(ls, pid, ids)
    counters = emu.counters()
    assert counters["requests"].get("generateContent", 0) == n and counters["batches"]["requests"] == n, counters
