"""Issue 6 "Done when", through /predict with real server processes, real Redis and the emulator:
- 50 tasks pointing at 5 distinct images, predicted by 4 processes at once with GEMINI_FILES=always:
  exactly 5 uploads;
- re-predicting (fresh processes, so nothing is served from memory) re-uploads nothing; after the
  emulator expires the files, one re-upload each and no failed task;
- Redis killed in the middle of a batch: every task still gets its predictions.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY
from tests.e2e.helpers import start_backend_process
from tests.helpers import config, rect_control, rect_ious

CONFIG = config(rect_control())


def _env(emu, redis_url, prefix, **extra):
    env = {
        "GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": DEFAULT_API_KEY, "GEMINI_FILES": "always",
        "REDIS_URL": redis_url, "REDIS_PREFIX": prefix, "FETCH_ALLOWLIST": "127.0.0.1",
        "WORKERS": "1", "THREADS": "8", "GEMINI_CONCURRENCY": "8", "PREDICT_TIMEOUT": "60",
    }
    env.update(extra)
    return env


def _scenes_and_tasks(image_server, n_tasks=50, n_images=5):
    scenes = [make_scene(640, 480, 4, seed=100 + i) for i in range(n_images)]
    urls = [image_server.add(f"/img{i}.png", encode_image(s.image, "png")) for i, s in enumerate(scenes)]
    tasks = [{"id": t, "data": {"image": urls[t % n_images]}} for t in range(n_tasks)]
    return scenes, tasks


def _predict_spread(backends, tasks):
    """Each process gets its share of the tasks, all at once."""
    shares = [[t for t in tasks if t["id"] % len(backends) == i] for i in range(len(backends))]

    def one(args):
        backend, share = args
        r = requests.post(backend.url + "/predict", json={"tasks": share, "label_config": CONFIG}, timeout=120)
        r.raise_for_status()
        return list(zip(share, r.json()["results"]))

    with ThreadPoolExecutor(len(backends)) as pool:
        return [pair for chunk in pool.map(one, zip(backends, shares)) for pair in chunk]


def _check(pairs, scenes):
    assert len(pairs) == 50
    for task, entry in pairs:
        assert "result" in entry, entry
        assert min(rect_ious(entry["result"], scenes[task["id"] % len(scenes)])) >= 0.9


def _round(env, tag, tasks, scenes) -> float:
    """Four fresh server processes predict the tasks together; returns their evictions.

    Each round is its own model_version (MODEL_VERSION_SUFFIX): finished outcomes are shared through
    Redis since the job layer, and a repeated round would be served from them without calling
    Gemini at all; this test is about the Files API URI cache, which the suffix does not touch."""
    env = {**env, "MODEL_VERSION_SUFFIX": f"round-{tag}"}
    backends = [start_backend_process(f"files-{tag}-{i}", env) for i in range(4)]
    try:
        _check(_predict_spread(backends, tasks), scenes)
        return sum(b.metric("gemini_ls_files_evictions_total") for b in backends)
    finally:
        for b in backends:
            b.stop()


def test_four_processes_upload_each_image_once_and_reuse_across_runs(emu, image_server, redis_url, redis_prefix):
    scenes, tasks = _scenes_and_tasks(image_server)
    env = _env(emu, redis_url, redis_prefix)

    _round(env, "a", tasks, scenes)
    counters = emu.counters()
    assert counters["uploads"] == 5
    assert counters["requests"]["generateContent"] == 50

    # Fresh processes (empty memory): the Redis cache alone spares every upload.
    _round(env, "b", tasks, scenes)
    assert emu.counters()["uploads"] == 5

    # Gemini forgets the files: each is re-uploaded exactly once, no task fails.
    assert emu.expire_files() == 5
    evictions = _round(env, "c", tasks, scenes)
    assert emu.counters()["uploads"] == 10
    assert evictions >= 5


def test_redis_killed_mid_batch_every_task_still_predicted(emu, image_server, restartable_redis):
    scenes, tasks = _scenes_and_tasks(image_server, n_tasks=40)
    emu.set_latency(0.25)
    backend = start_backend_process("files-redis-kill", _env(emu, restartable_redis.url, "kill:", GEMINI_CONCURRENCY="4"))
    try:
        killer = threading.Timer(0.8, restartable_redis.stop)
        killer.start()
        started = time.monotonic()
        r = requests.post(backend.url + "/predict", json={"tasks": tasks, "label_config": CONFIG}, timeout=120)
        killer.join()
        assert time.monotonic() - started > 1.0  # Redis really died while the batch ran
        results = r.json()["results"]
        assert len(results) == 40
        for task, entry in zip(tasks, results):
            assert "result" in entry, entry
            assert min(rect_ious(entry["result"], scenes[task["id"] % 5])) >= 0.9
        assert backend.metric("gemini_ls_cache_errors_total") > 0
        assert "redis" in backend.log_text().lower()
        assert requests.get(backend.url + "/health", timeout=5).json()["status"] == "UP"
    finally:
        backend.stop()
