"""A batch job's part of the one job store (jobs/state.py), on a real redis-server and in memory alike."""

from __future__ import annotations

import pytest
import redis

from gemini_ls.gemini.pricing import Tokens
from gemini_ls.jobs.memstore import MemoryBatchState
from gemini_ls.jobs.records import BatchRecord, batch_job_id, parse_batch_job_id
from gemini_ls.jobs.state import RedisJobStore


def test_job_ids_round_trip():
    assert parse_batch_job_id(batch_job_id(12, "gemini-ls-x-v3-abc")) == ("12", "gemini-ls-x-v3-abc")
    assert parse_batch_job_id("batches/xyz") is None and parse_batch_job_id("batch::v") is None


@pytest.fixture(params=["redis", "memory"])
def store(request, redis_url, redis_prefix):
    if request.param == "redis":
        return RedisJobStore(redis.Redis.from_url(redis_url, decode_responses=True), redis_prefix).batch(3, "v1")
    return MemoryBatchState(3, "v1")


def test_store_keeps_what_a_restart_needs(store, redis_url, redis_prefix):
    assert store.job == "batch:3:v1" and store.batches() == [] and not store.cancelled()
    store.set_submitting("gemini-ls batch:3:v1 #1")
    assert store.submitting() == "gemini-ls batch:3:v1 #1"
    store.put_batch(BatchRecord("batches/a", "SUBMITTED", "gemini-ls batch:3:v1 #1", 4, "file", "gemini-3.6-flash"))
    store.set_submitting(None)
    assert store.submitting() is None
    assert [(b.active, b.model) for b in store.batches()] == [(True, "gemini-3.6-flash")]
    store.put_batch(BatchRecord("batches/a", "SUCCEEDED", "gemini-ls batch:3:v1 #1", 4, "file"))
    assert [b.active for b in store.batches()] == [False]
    store.put_meta(7, {"image": (640, 480)})
    assert store.meta(7) == {"image": (640, 480)} and store.meta(8) is None
    store.add_written([7, 9])
    store.add_written([])
    assert store.written() == {"7", "9"}
    store.add_failed(11, "image_not_found: gone")
    store.add_failed(12, "batch_error: code 13")
    store.clear_failed([12])
    assert store.failed() == {"11": "image_not_found: gone"}
    store.add_usage("gemini-3.6-flash", Tokens(10, 5, 1, 2))
    store.add_usage("gemini-3.6-flash", Tokens(1, 1, 0, 1))
    store.add_usage("gemini-2.5-flash-lite", Tokens(4, 2, 0, 1))
    assert store.usage() == {"gemini-2.5-flash-lite": Tokens(4, 2, 0, 1), "gemini-3.6-flash": Tokens(11, 6, 1, 3)}
    store.put_parts(7, {1: [{"type": "choices"}]})
    store.put_parts(7, {2: []})
    assert store.parts(7) == {1: [{"type": "choices"}], 2: []} and store.parts(8) == {}
    assert store.parts_of([7, 8]) == {"7": {1, 2}}
    store.drop_parts(7, [1])
    assert store.parts(7) == {2: []}
    store.drop_parts(7, [2])
    assert store.parts(7) == {} and store.parts_of([7]) == {}
    store.cancel()
    assert store.cancelled()
    store.cancel(False)
    assert not store.cancelled()
    store.cancel()
    if store.durable:  # a new process sees all of it
        jobs = RedisJobStore(redis.Redis.from_url(redis_url), redis_prefix)  # bytes replies: decoded alike
        again = jobs.batch(3, "v1")
        assert again.written() == {"7", "9"} and again.usage()["gemini-3.6-flash"] == Tokens(11, 6, 1, 3) and again.cancelled()
        info = jobs.get("batch:3:v1")
        assert info is not None and info.kind == "batch" and info.cancelled and info.state == "cancelled"
        assert info.done == {7, 9} and info.failed == {11: "image_not_found: gone"}
        assert "batch:3:v1" in jobs.ids()


def test_a_batch_job_kept_before_the_one_store_is_adopted_under_its_record(redis_url, redis_prefix):
    """An upgrade in the middle of a batch: the old keys (`batch:{p}:{v}:*`) move under `job:batch:...`."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    old = f"{redis_prefix}batch:4:v9:"
    r.hset(old + "batches", "batches/x", '{"state": "RUNNING", "display_name": "d", "requests": 2, "source": "inline"}')
    r.sadd(old + "written", "1")
    r.hset(old + "failed", "2", "parse: no JSON")
    r.hset(old + "meta", "3", '{"img": [4, 5]}')
    r.set(old + "cancelled", 1)
    r.sadd(f"{redis_prefix}batch:jobs", "batch:4:v9")
    store = RedisJobStore(r, redis_prefix)
    state = store.batch(4, "v9")
    assert [b.name for b in state.batches() if b.active] == ["batches/x"]
    assert state.written() == {"1"} and state.failed() == {"2": "parse: no JSON"} and state.meta(3) == {"img": (4, 5)}
    assert state.cancelled() and not r.exists(old + "batches") and not r.sismember(f"{redis_prefix}batch:jobs", "batch:4:v9")
    info = store.get("batch:4:v9")
    assert info is not None and info.done == {1} and info.kind == "batch"
