"""Claims (exactly-once per task and version) and the job store, in memory and on a real Redis."""

from __future__ import annotations

import time

import pytest
import redis

from gemini_ls.jobs.claims import DELIVERED, WRITTEN, MemoryClaims, RedisClaims, queued_owner, scope_of
from gemini_ls.jobs.memstore import MemoryJobStore
from gemini_ls.jobs.oneclick import project_id
from gemini_ls.jobs.prelabel import UsageError, parse_task_ids
from gemini_ls.jobs.records import JobInfo
from gemini_ls.jobs.state import RedisJobStore


def _memory_or_redis(request, memory, on_redis):
    if request.param == "memory":
        return memory()
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    return on_redis(client, request.getfixturevalue("redis_prefix"))


@pytest.fixture(params=["memory", "redis"])
def claims(request):
    return _memory_or_redis(request, MemoryClaims, RedisClaims)


@pytest.fixture(params=["memory", "redis"])
def store(request):
    return _memory_or_redis(request, MemoryJobStore, RedisJobStore)


def test_one_owner_per_task_and_version(claims):
    scope = scope_of(7, "v1")
    assert claims.acquire(scope, [1, 2], "a", 30) == {1: None, 2: None}
    assert claims.acquire(scope, [2, 3], "b", 30) == {2: "a", 3: None}
    assert claims.acquire(scope_of(7, "v2"), [2], "b", 30) == {2: None}  # another version is another claim
    assert claims.renew(scope, [1, 2, 3], "a", 30) == {1, 2}
    claims.release(scope, [1, 3], "a")  # only what `a` holds is released
    assert claims.holders(scope, [1, 2, 3]) == {1: None, 2: "a", 3: "b"}
    claims.finish(scope, [2], WRITTEN, 60)
    assert claims.acquire(scope, [2], "c", 30) == {2: WRITTEN}
    claims.forget(scope, [2])
    assert claims.holders(scope, [2]) == {2: None}


def test_a_lapsed_lease_can_be_taken(claims):
    scope = scope_of(1, "v")
    assert claims.acquire(scope, [5], "dead-worker", 0.3) == {5: None}
    time.sleep(0.45)
    assert claims.acquire(scope, [5], "retry", 30) == {5: None}
    assert claims.renew(scope, [5], "dead-worker", 30) == set()  # the dead owner cannot take it back
    claims.finish(scope, [5], DELIVERED, 30)
    assert claims.holders(scope, [5]) == {5: DELIVERED}


def test_marks_are_hints_a_marked_task_can_be_retaken(claims):
    scope = scope_of(2, "v")
    claims.finish(scope, [1], DELIVERED, 60)
    claims.finish(scope, [2], WRITTEN, 60)
    claims.acquire(scope, [3], "live-owner", 60)
    assert claims.retake(scope, [1, 2, 3, 4], "me", 60) == {1, 2, 4}  # never a live owner's task
    assert claims.holders(scope, [1, 2, 3, 4]) == {1: "me", 2: "me", 3: "live-owner", 4: "me"}


def test_a_click_hands_its_tasks_to_its_job(claims):
    scope = scope_of(4, "v")
    claims.acquire(scope, [1, 2], "predict:click", 60)
    claims.acquire(scope, [3], "someone-else", 60)
    assert claims.transfer(scope, [1, 2, 3], "predict:click", queued_owner("j9"), 60) == {1, 2}  # only its own
    assert claims.acquire(scope, [1], "second-click", 60) == {1: "job:j9:queued"}  # left to the job
    assert claims.transfer(scope, [1], queued_owner("j9"), "job:j9:rq1:host:1", 60) == {1}  # an attempt takes it
    assert claims.holders(scope, [1, 2, 3]) == {1: "job:j9:rq1:host:1", 2: "job:j9:queued", 3: "someone-else"}


def test_job_store_keeps_who_handed_a_job_over(store):
    store.create(JobInfo(id="j2", project=3, model_version="v", total=1, created=time.time(), handed_by="predict:h:1:a:b"), "<View/>")
    assert store.get("j2").handed_by == "predict:h:1:a:b"


def test_job_store_counts_each_task_once(store):
    info = JobInfo(id="j1", project=3, model_version="v", total=4, created=time.time())
    store.create(info, "<View/>")
    store.set_chunks("j1", 2, ["rq1", "rq2"])
    store.mark_failed("j1", {1: "image_not_found: gone", 2: "gemini_server: 503"})
    store.mark_done("j1", [2, 3])  # a retry fixed task 2
    store.mark_done("j1", [3])  # counted once
    store.mark_failed("j1", {3: "late failure of a done task is ignored"})
    store.mark_elsewhere("j1", {4: "predict:host:1"})
    got = store.get("j1")
    assert got.done == {2, 3} and dict(got.failed) == {1: "image_not_found: gone"} and dict(got.elsewhere) == {4: "predict:host:1"}
    assert got.finished and got.state == "failed" and got.chunks == 2
    assert got.summary()["failed_by_reason"] == {"image_not_found": 1}
    assert store.config("j1") == "<View/>" and store.rq_ids("j1") == ["rq1", "rq2"]
    assert [j.id for j in store.recent()] == ["j1"]
    assert store.get("nope") is None


def test_task_id_lists():
    assert parse_task_ids("1,2,5-9") == [1, 2, 5, 6, 7, 8, 9]
    assert parse_task_ids(" 3, 3,4 ") == [3, 4]
    for bad in ("a", "5-", "9-5"):
        with pytest.raises(UsageError):
            parse_task_ids(bad)


def test_project_id_from_label_studios_project_field():
    assert project_id("12.1795504334", []) == 12
    assert project_id(None, [{"project": 4}]) == 4
    assert project_id("x.y", []) is None and project_id(True, []) is None
