"""/predict and the job layer, through our HTTP server, the real SDK and the emulator: without Label
Studio credentials the write-back is off and says so once; a task another holder (a running job,
an earlier click) has claimed on the shared Redis is answered without `result` and not computed."""

from __future__ import annotations

import logging

import redis

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.jobs.claims import RedisClaims, scope_of
from tests.helpers import config, data_uri, rect_control

CONFIG = config(rect_control())


def _tasks(n: int) -> list[dict]:
    scene = make_scene(320, 240, 2, seed=4)
    uri = data_uri(encode_image(scene.image, "png"), "image/png")
    return [{"id": i, "project": 9, "data": {"image": uri}} for i in range(1, n + 1)]


def _predict(backend, tasks):
    resp = backend.post("/predict", {"tasks": tasks, "label_config": CONFIG, "project": "9.1795504334", "params": {"context": None}})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_without_label_studio_credentials_write_back_is_off_and_said_once(backend_factory, emu, caplog):
    backend = backend_factory(LABEL_STUDIO_URL=None, LABEL_STUDIO_API_KEY=None)
    health = backend.get("/health").json()
    assert health["jobs"]["write_back"]["enabled"] is False and "no Label Studio credentials" in health["jobs"]["write_back"]["mode"]
    assert health["jobs"]["queue"].startswith("in-process pool")
    with caplog.at_level(logging.INFO, logger="gemini_ls.jobs"):
        for _ in range(3):
            body = _predict(backend, _tasks(2))
            assert all("result" in r for r in body["results"])
    assert sum("one-click write-back is OFF" in r.getMessage() for r in caplog.records) == 1


def test_a_task_held_by_a_job_is_left_to_it(backend_factory, emu, redis_url, redis_prefix, image_server):
    # credentials that are never used: only held tasks would be written, and held tasks are not ours
    backend = backend_factory(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, SERVE_WORKER="false",
                              LABEL_STUDIO_URL=image_server.base_url, LABEL_STUDIO_API_KEY="legacy-token-0123456789")
    tasks = _tasks(4)
    model_version = backend.post("/setup", {"schema": CONFIG, "project": "9.1795504334"}).json()["model_version"]
    claims = RedisClaims(redis.Redis.from_url(redis_url), redis_prefix)
    assert claims.acquire(scope_of(9, model_version), [2, 3], "job:other:rq1:host:1", 60) == {2: None, 3: None}
    before = emu.counters()["requests"].get("generateContent", 0)
    results = _predict(backend, tasks)["results"]
    assert ["result" in r for r in results] == [True, False, False, True]
    assert "background job" in results[1]["error"]
    assert emu.counters()["requests"].get("generateContent", 0) - before == 2  # held tasks not computed
    # the answered ones are marked delivered, so a job (or another click) leaves them alone too
    assert claims.holders(scope_of(9, model_version), [1, 4]) == {1: "delivered", 4: "delivered"}
    # Label Studio asks only for tasks it lacks: asked again (its SQLite "database is locked" retry
    # re-runs a /predict whose save failed), a delivered task is answered again, from memory
    calls = emu.counters()["requests"].get("generateContent", 0)
    again = _predict(backend, [tasks[0], tasks[3]])["results"]
    assert all("result" in r for r in again), again
    assert emu.counters()["requests"].get("generateContent", 0) == calls
    assert backend.get("/health").json()["jobs"]["queue"] == "rq"


def test_late_outcomes_are_served_by_another_replica_from_redis(backend_factory, emu, redis_url, redis_prefix):
    """Write-back off: a late task finished on replica A is served to a repeated Retrieve on replica B."""
    import time

    common = dict(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, SERVE_WORKER="false", WRITE_BACK="false",
                  GEMINI_CONCURRENCY="2", PREDICT_TIMEOUT="1.2")
    a, b = backend_factory(**common), backend_factory(**common)
    emu.set_latency(0.8)
    tasks = _tasks(4)
    first = _predict(a, tasks)["results"]
    assert 1 <= sum("result" in r for r in first) < 4  # some late
    time.sleep(2.5)  # the late ones finish on A
    emu.set_latency(0.0)
    calls = emu.counters()["requests"].get("generateContent", 0)
    second = _predict(b, tasks)["results"]
    assert all("result" in r for r in second), second
    assert emu.counters()["requests"].get("generateContent", 0) == calls  # nothing recomputed on B


def test_metrics_scrapes_reuse_one_job_queue_client(backend_factory, emu, redis_url, redis_prefix):
    """/metrics reads queue depth from RQ on every scrape through the queue (and Redis client) made
    at start-up: twenty scrapes open no new Redis connection."""
    backend = backend_factory(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, SERVE_WORKER="false")
    queue = backend.backend.job_queue
    assert queue is not None
    r = redis.Redis.from_url(redis_url)
    from gemini_ls.jobs.state import RedisJobStore

    RedisJobStore(r, redis_prefix).batch(7, "v1").add_written([1, 2])  # a Batch API job: read per scrape too
    assert backend.get("/metrics").status_code == 200  # the first scrape may open the pool's connection
    before = r.info("stats")["total_connections_received"]
    for _ in range(20):
        text = backend.get("/metrics").text
        assert "gemini_ls_jobs_queue_depth" in text
        assert 'gemini_ls_batch_job_tasks{job="batch:7:v1",outcome="written"} 2.0' in text
    assert backend.backend.job_queue is queue
    # a fresh client per scrape (the old way) would be >= 20; a stray connection of a background thread is allowed
    assert r.info("stats")["total_connections_received"] - before <= 3
