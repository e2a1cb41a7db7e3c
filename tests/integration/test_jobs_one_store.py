"""The one job store (jobs/state.py) through the `gemini-ls jobs` command, on a real redis-server and
RQ: an RQ job and a Batch API job are listed in ONE table, and `jobs cancel ID` of either kind marks
it cancelled and releases the claims of what it had not started, so a later click or prelabel takes them."""

from __future__ import annotations

import json
import time

import pytest
import redis

from gemini_ls.cli import main
from gemini_ls.jobs.batchhold import batch_owner
from gemini_ls.jobs.claims import RedisClaims, queued_owner, scope_of
from gemini_ls.jobs.queue import RQJobQueue
from gemini_ls.jobs.records import BatchRecord, JobInfo
from gemini_ls.jobs.state import RedisJobStore
from gemini_ls.settings import Settings


@pytest.fixture
def env(monkeypatch, redis_url, redis_prefix):
    for name in ("REDIS_URL", "REDIS_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REDIS_PREFIX", redis_prefix)
    return Settings(redis_url=redis_url, redis_prefix=redis_prefix)


def _jobs(redis_url: str, prefix: str) -> tuple[RedisJobStore, RedisClaims]:
    client = redis.Redis.from_url(redis_url)
    return RedisJobStore(client, prefix), RedisClaims(client, prefix)


def _rq_job(settings: Settings, store: RedisJobStore, job_id: str, project: int) -> list[str]:
    store.create(JobInfo(id=job_id, project=project, model_version="v1", total=4, created=time.time() - 5), "<View/>")
    queue = RQJobQueue(settings, redis.Redis.from_url(settings.redis_url or ""))
    rq_ids = queue.submit(job_id, [[{"id": 1}, {"id": 2}], [{"id": 3}, {"id": 4}]])  # no worker: both stay queued
    store.set_chunks(job_id, 2, rq_ids)
    return rq_ids


def _batch_job(store: RedisJobStore, project: int) -> str:
    batch = store.batch(project, "v2")
    batch.set_total(3)
    for task in (21, 22, 23):
        batch.put_meta(task, {"img": (10, 10)})
    batch.add_written([21])
    batch.put_batch(BatchRecord("batches/ended", "SUCCEEDED", "d", 3, "inline", "gemini-2.5-flash"))
    return batch.job


def test_jobs_lists_an_rq_job_and_a_batch_job_in_one_table(env, capsys, redis_url, redis_prefix):
    store, _ = _jobs(redis_url, redis_prefix)
    _rq_job(env, store, "20261206-010000-aaaaaa", 5)
    batch_id = _batch_job(store, 6)
    assert main(["jobs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    headers = [line for line in lines if line.startswith("job ")]
    assert len(headers) == 1 and "kind" in headers[0] and "state" in headers[0]  # one table
    rows = {line.split()[0]: line.split() for line in lines if line and not line.startswith((" ", "job "))}
    assert rows["20261206-010000-aaaaaa"][1:3] == ["prelabel", "5"]
    assert rows[batch_id][1:3] == ["batch", "6"]
    assert "batches/ended" in "\n".join(lines)  # a batch job's Batch API jobs under its row
    assert main(["jobs", "--json"]) == 0
    listed = {j["id"]: j for j in json.loads(capsys.readouterr().out)}
    assert (listed[batch_id]["kind"], listed[batch_id]["done"], listed[batch_id]["total"]) == ("batch", 1, 3)
    assert listed["20261206-010000-aaaaaa"]["state"] == "queued"  # the page's word: nothing done yet


def test_cancel_of_an_rq_job_takes_its_chunks_off_the_queue_and_releases_its_queued_claims(env, capsys, redis_url,
                                                                                       redis_prefix):
    store, claims = _jobs(redis_url, redis_prefix)
    job_id = "20261206-010000-bbbbbb"
    _rq_job(env, store, job_id, 5)
    scope = scope_of(5, "v1")
    claims.acquire(scope, [1, 2], queued_owner(job_id), 600)  # a click's remainder, waiting on the queue
    running = f"job:{job_id}:rq-1:0:host:1"
    claims.acquire(scope, [3], running, 600)  # a chunk already running: it finishes (and writes) its tasks
    claims.acquire(scope, [4], "click:someone-else", 600)  # not this job's
    assert main(["jobs", "cancel", job_id]) == 0
    assert "2 queued chunk(s) dropped, 2 claim(s) released" in capsys.readouterr().err
    assert claims.holders(scope, [1, 2, 3, 4]) == {1: None, 2: None, 3: running, 4: "click:someone-else"}
    info = store.get(job_id)
    assert info is not None and info.cancelled and info.state == "cancelled"
    assert RQJobQueue(env, redis.Redis.from_url(redis_url)).queue.count == 0


def test_cancel_of_a_batch_job_releases_its_claims(env, capsys, redis_url, redis_prefix):
    store, claims = _jobs(redis_url, redis_prefix)
    job_id = _batch_job(store, 6)
    scope, owner = scope_of(6, "v2"), batch_owner(6, "v2")
    claims.acquire(scope, [22, 23], owner, 600)  # sent, not written yet
    claims.acquire(scope, [24], "click:other", 600)
    assert main(["jobs", "cancel", job_id]) == 0
    err = capsys.readouterr().err
    assert "2 claim(s) released" in err and "will not resubmit" in err
    assert claims.holders(scope, [22, 23, 24]) == {22: None, 23: None, 24: "click:other"}
    assert claims.acquire(scope, [22, 23], "click:later", 60) == {22: None, 23: None}  # a later click takes them
    assert store.batch_state(job_id).cancelled()
    assert main(["jobs", "cancel", "nonsense"]) == 2 and "neither a job id" in capsys.readouterr().err
