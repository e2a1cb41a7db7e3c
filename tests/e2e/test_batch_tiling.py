"""`gemini-ls prelabel --batch` with TILING=auto (issue #24): the real CLI process, the real Label
Studio, real Redis, the emulator's Batch API through the real google-genai SDK. A tiled plan is one
batch request per tile; the results are merged as the synchronous path merges them, so the stored
predictions find the small objects and equal what /predict's code answers for the same tasks.
"""

from __future__ import annotations

import time

import pytest

from gemini_ls.backend import build_backend
from gemini_ls.emulator.scenes import encode_image
from gemini_ls.emulator.tilescenes import make_small_objects_scene
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.settings import Settings
from tests.helpers import config, rect_control, tiling_score

from .prelabel import EMULATOR_KEY, predictions_by_task, prelabel_env, run_prelabel

pytestmark = pytest.mark.e2e

MODEL = "gemini-3.6-flash"
CONFIG = config(rect_control(extra='model_max_objects="60"'))


def test_tiled_requests_in_a_batch_are_merged_like_synchronous_ones(label_studio, cors_images, emulator_factory,
                                                                    redis_url, redis_prefix):
    emu = emulator_factory()
    emu.batches.configure(pending_seconds=0.3)
    scenes = [make_small_objects_scene(4000, 3000, 24, seed=seed) for seed in (1, 2)]
    pid = label_studio.create_project("batch tiling", CONFIG)["id"]
    data = [{"image": cors_images.add(f"batch-tiling/{i}.jpg", encode_image(s.image, "jpeg", quality=92), content_type="image/jpeg")}
            for i, s in enumerate(scenes)]
    label_studio.request("POST", f"/api/projects/{pid}/import", json=data, expect=201)
    tasks = sorted(label_studio.tasks(pid), key=lambda t: t["id"])

    env = prelabel_env(emu.url, label_studio, redis_url, redis_prefix, TILING="auto", GEMINI_MODEL=MODEL)
    done = run_prelabel(env, pid)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 of 2 task(s) written" in done.stderr, done.stderr[-3000:]
    counters = emu.counters()
    assert counters["requests"]["batch.generateContent"] == 8  # a 2x2 grid per 12 MP photo
    assert "generateContent" not in counters["requests"]  # nothing went synchronously

    settings = Settings(api_key=EMULATOR_KEY, base_url=emu.url, fetch_allowlist=("127.0.0.1",), model=MODEL,
                        defaults=Settings.from_env({"TILING": "auto"}).defaults)
    backend = build_backend(settings)
    try:
        spec = parse_label_config(CONFIG, settings.defaults)
        version = backend.model_version(spec)
        sync = backend.runner.run([{"id": t["id"], "data": t["data"]} for t in tasks], spec, version, backend.fetch,
                                  deadline=time.monotonic() + 300)
    finally:
        backend.runner.shutdown()
    stored = predictions_by_task(label_studio, pid, version)
    for task, scene, outcome in zip(tasks, scenes, sync, strict=True):
        (prediction,) = stored[task["id"]]
        assert prediction["result"] == list(outcome.result or ()), f"task {task['id']}: batch and sync regions differ"
        found = tiling_score(prediction["result"], scene)
        assert found.small_found / found.small_total >= 0.9 and found.large_exact == 4, found
