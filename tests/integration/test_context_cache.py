"""Few-shot examples through Gemini's context cache, over the real google-genai SDK and HTTP: the
backend's /predict sends each task naming one cachedContents resource (made once for all tasks), the
emulator reports cachedContentTokenCount, an expired cache costs no task, a failed caches.create
leaves the examples inline, a set below the model's minimum is never cached, and the caches of an
example set are deleted when its job ends."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest
from google.genai import types

from gemini_ls.emulator.caches import min_tokens
from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY
from gemini_ls.images.prepare import prepare_image
from gemini_ls.jobs.claims import MemoryClaims
from gemini_ls.jobs.estimate_io import count_task
from gemini_ls.jobs.memstore import MemoryJobStore
from gemini_ls.jobs.records import JobInfo
from gemini_ls.jobs.work import ChunkExecutor
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.pipeline import build_pipeline
from gemini_ls.plan import PlanExample, plan_requests
from gemini_ls.review.fewshot import example_answer, tag_of_version
from gemini_ls.settings import Settings
from tests.fixtures.backend import backend_test_env
from tests.helpers import scene_rect_regions
from tests.integration.test_fewshot import CONFIG, PROJECT, FakeProject, start, version_of

CACHED_MODEL = "gemini-2.5-flash-lite"  # 640x480 examples: 4 tiles of 258 tokens each; three pass its 2,048 minimum


@pytest.fixture
def project(image_server):
    return FakeProject(image_server)


def reviewed(backend_factory, image_server, project, k=3, seed=900, **env):
    for i in range(1, k + 1):
        sc = make_scene(640, 480, 4, seed=seed + i)
        project.add(i, image_server.add(f"/cx{seed}-{i}.png", encode_image(sc.image, "png")), scene_rect_regions(sc))
    backend = start(backend_factory, image_server, k, **env)
    for tid in range(1, k + 1):
        project.webhook(backend, tid)
    return backend, version_of(backend)


def tasks_for(image_server, n, seed):
    scenes = [make_scene(640, 480, 4, seed=seed + i) for i in range(n)]
    return [{"id": seed + i, "data": {"image": image_server.add(f"/ct{seed}-{i}.png", encode_image(sc.image, "png"))}}
            for i, sc in enumerate(scenes)]


def predict(backend, tasks):
    r = backend.post("/predict", {"tasks": tasks, "label_config": CONFIG, "project": PROJECT})
    assert r.status_code == 200, r.text
    assert all(entry.get("result") for entry in r.json()["results"]), r.json()
    return r.json()


def cache_refs(bodies):
    return [b.get("cachedContent") or b.get("cached_content") for b in bodies]


def test_one_cache_serves_every_task_and_its_tokens_are_reported_as_cached(emu, image_server, project, backend_factory):
    backend, version = reviewed(backend_factory, image_server, project, GEMINI_MODEL=CACHED_MODEL)
    emu.record(50)
    predict(backend, tasks_for(image_server, 6, 1000))
    bodies = list(emu.recorded)
    assert len(bodies) == 6
    refs = cache_refs(bodies)
    assert len(set(refs)) == 1 and refs[0].startswith("cachedContents/")
    for body in bodies:  # the examples and the system instruction live in the cache, not in the request
        assert len(body["contents"]) == 1 and "systemInstruction" not in body and "system_instruction" not in body
    counters = emu.counters()
    assert counters["requests"]["cachedContents.create"] == 1 and counters["caches"]["live"] == 1
    (cache,) = emu.caches.live()
    assert cache.tokens >= min_tokens(CACHED_MODEL) and cache.model == f"models/{CACHED_MODEL}"
    assert [c["role"] for c in cache.contents] == ["user", "model"] * 3
    # usageMetadata.cachedContentTokenCount, read through the SDK, counted per request
    assert backend.metric("gemini_ls_gemini_tokens_total", direction="cached") == 6 * cache.tokens
    assert backend.metric("gemini_ls_gemini_tokens_total", direction="input") > 6 * cache.tokens
    assert backend.metric("gemini_ls_context_cache_total", result="created") == 1
    assert backend.metric("gemini_ls_context_cache_total", result="hit") == 5

    # the job of this version ends: its cache is deleted, not left to cost storage until its TTL
    caches = backend.backend.gateway.fewshot.caches
    assert caches.release(tag_of_version(version)) == 1
    assert emu.counters()["caches"]["live"] == 0 and emu.counters()["requests"]["cachedContents.delete"] == 1


def test_an_expired_cache_costs_no_task_and_a_new_one_is_made(emu, image_server, project, backend_factory, caplog):
    caplog.set_level(logging.INFO, logger="gemini_ls")
    backend, _ = reviewed(backend_factory, image_server, project, seed=910, GEMINI_MODEL=CACHED_MODEL)
    predict(backend, tasks_for(image_server, 2, 1100))
    assert emu.caches.expire() == 1  # its TTL ran out while our Redis/memory entry still names it
    emu.record(20)
    predict(backend, tasks_for(image_server, 3, 1200))  # every task answered (predict checks)
    bodies = list(emu.recorded)
    refs = cache_refs(bodies)
    # a task that named the expired cache got Gemini's 403 and went again with the examples inline;
    # a task that started after that made (or found) the new cache
    expired = refs[0]
    assert expired is not None
    refused = refs.count(expired)
    assert refused >= 1 and refs.count(None) == refused
    assert all(len(b["contents"]) == 7 for b, r in zip(bodies, refs) if r is None)
    emu.record(20)
    predict(backend, tasks_for(image_server, 2, 1250))
    (fresh,) = set(cache_refs(emu.recorded))  # the next tasks share a new cache
    assert fresh and fresh != expired
    assert emu.counters()["requests"]["cachedContents.create"] == 2
    assert "refused by Gemini: examples go inline" in caplog.text
    assert backend.metric("gemini_ls_context_cache_total", result="evicted") == refused


def test_a_failed_cache_create_leaves_the_examples_inline(emu, image_server, project, backend_factory, caplog):
    caplog.set_level(logging.WARNING, logger="gemini_ls")
    backend, _ = reviewed(backend_factory, image_server, project, seed=920, GEMINI_MODEL=CACHED_MODEL)
    emu.add_fault("500", count=1, routes=["cachedContents.create"])
    emu.record(20)
    predict(backend, tasks_for(image_server, 3, 1300))
    bodies = list(emu.recorded)
    assert cache_refs(bodies) == [None] * 3 and [len(b["contents"]) for b in bodies] == [7] * 3
    assert emu.counters()["requests"]["cachedContents.create"] == 1  # not retried by every task (RETRY_SECONDS)
    assert "few-shot context cache not created" in caplog.text
    assert backend.metric("gemini_ls_context_cache_total", result="failed") == 1


def test_examples_below_the_models_minimum_are_not_cached(emu, image_server, project, backend_factory):
    # gemini-3.6-flash: one example image at HIGH is 1,120 tokens, its minimum is 4,096
    backend, _ = reviewed(backend_factory, image_server, project, k=1, seed=930)
    emu.record(10)
    predict(backend, tasks_for(image_server, 2, 1400))
    assert cache_refs(emu.recorded) == [None, None] and [len(b["contents"]) for b in emu.recorded] == [3, 3]
    assert "cachedContents.create" not in emu.counters()["requests"]
    assert backend.metric("gemini_ls_context_cache_total", result="too_small") == 2


def test_few_shot_cache_off_sends_the_examples_inline(emu, image_server, project, backend_factory):
    backend, _ = reviewed(backend_factory, image_server, project, seed=940, GEMINI_MODEL=CACHED_MODEL, FEW_SHOT_CACHE="false")
    emu.record(10)
    predict(backend, tasks_for(image_server, 2, 1500))
    assert cache_refs(emu.recorded) == [None, None] and [len(b["contents"]) for b in emu.recorded] == [7, 7]
    assert "cachedContents.create" not in emu.counters()["requests"]


def test_two_replicas_on_one_redis_share_one_cache(emu, image_server, project, backend_factory, redis_url, redis_prefix):
    shared = dict(GEMINI_MODEL=CACHED_MODEL, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, SERVE_WORKER="false")
    a, version = reviewed(backend_factory, image_server, project, seed=950, **shared)
    b = start(backend_factory, image_server, 3, **shared)  # the review ledger is in Redis: b learns the same examples
    assert version_of(b) == version
    emu.record(20)
    predict(a, tasks_for(image_server, 2, 1600))
    predict(b, tasks_for(image_server, 2, 1700))
    (name,) = set(cache_refs(emu.recorded))
    assert name and emu.counters()["requests"]["cachedContents.create"] == 1
    assert b.metric("gemini_ls_context_cache_total", result="hit") == 2  # b found a's cache in Redis
    # either replica ends the job: the shared record goes with the cache
    assert b.backend.gateway.fewshot.caches.release(tag_of_version(version)) == 1
    assert a.backend.gateway.fewshot.caches.release(tag_of_version(version)) == 0
    assert emu.counters()["caches"]["live"] == 0


def test_a_jobs_last_chunk_deletes_its_example_sets_caches(emu):
    """jobs/work.py's end-of-job hook on a real pipeline: the cache made over the SDK survives the
    job's chunks and is deleted (caches.delete at the emulator) when the job store says it finished."""
    settings = Settings.from_env({**backend_test_env(emu.url, DEFAULT_API_KEY), "FEW_SHOT_EXAMPLES": "3",
                                  "GEMINI_MODEL": CACHED_MODEL})
    pipeline = build_pipeline(settings)
    try:
        sc = make_scene(640, 480, 3, seed=960)
        image = types.Part.from_bytes(data=encode_image(sc.image, "png"), mime_type="image/png")
        turns = [types.Content(role="user", parts=[image, types.Part.from_text(text="Detect.")]),
                 types.Content(role="model", parts=[types.Part.from_text(text="[]")])] * 3
        version = f"gemini-ls-{CACHED_MODEL}-p1-0123abcd-e1234abcd"
        caches = pipeline.gateway.fewshot.caches
        assert caches.reference(CACHED_MODEL, "sys", turns, 3000, "e1234abcd", time.monotonic() + 30)
        store = MemoryJobStore()
        store.create(JobInfo("j1", 1, version, total=2, created=time.time()), "<View/>")
        executor = ChunkExecutor(pipeline, None, store, MemoryClaims(), None)
        store.mark_done("j1", [1])
        executor._end_if_finished("j1", version)  # a chunk ends, the job has not: the cache stays
        assert emu.counters()["caches"]["live"] == 1
        store.mark_done("j1", [2])
        executor._end_if_finished("j1", version)  # its last chunk
        assert emu.counters()["caches"] == {"live": 0, "created": 1, "deleted": 1}
    finally:
        pipeline.close()


def test_an_estimate_creates_no_cache_and_counts_cacheable_examples_as_cached(emu, image_server):
    """prelabel --estimate (jobs/estimate_io.count_task) over the real SDK: the examples are counted
    by countTokens as turns, no caches.create is sent, and the requests whose examples a job would
    cache carry them as cached tokens (billed at the cached rate)."""
    settings = Settings.from_env({**backend_test_env(emu.url, DEFAULT_API_KEY), "FEW_SHOT_EXAMPLES": "3",
                                  "GEMINI_MODEL": CACHED_MODEL})
    pipeline = build_pipeline(settings)
    try:
        spec = parse_label_config(CONFIG, settings.defaults)
        (plan,) = plan_requests(spec, settings.routing)
        examples = []
        for i in range(3):
            sc = make_scene(640, 480, 3, seed=970 + i)
            image = prepare_image(encode_image(sc.image, "png"), name="image", max_side=settings.image_max_side,
                                  max_pixels=settings.image_max_pixels)
            examples.append(PlanExample(f"a{i}.x", (image,), example_answer(plan, scene_rect_regions(sc))))
        plan = replace(plan, examples=tuple(examples))
        (task,) = tasks_for(image_server, 1, 1800)
        (counted,) = count_task(pipeline, task, spec, [plan], deadline=time.monotonic() + 30)
        few_shot = pipeline.metrics.registry.get_sample_value("gemini_ls_few_shot_input_tokens_total")  # not sent: 0
        assert counted.model == CACHED_MODEL and counted.input_tokens > counted.cached_tokens >= min_tokens(CACHED_MODEL)
        assert "cachedContents.create" not in emu.counters()["requests"] and not few_shot
        assert emu.counters()["requests"].get("generateContent", 0) == 0
    finally:
        pipeline.close()
