"""The Files API layer end to end: real Redis, the Gemini emulator over HTTP, the real google-genai SDK.

Each "task" is one GeminiCaller.generate through FilesManager.generate, exactly what a
prediction does per control; the counters of the emulator say what really went over the wire.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import redis
from google.genai import types
from PIL import Image

from gemini_ls.detections import RequestKind
from gemini_ls.emulator.server import DEFAULT_API_KEY
from gemini_ls.gemini.cache import FileCache, FileRef, MemoryFileCache, RedisFileCache
from gemini_ls.gemini.client import make_client
from gemini_ls.gemini.files import FilesError, FilesManager
from gemini_ls.gemini.prompts import Prompt
from gemini_ls.gemini.request import GeminiCaller
from gemini_ls.images.prepare import PreparedImage
from gemini_ls.metrics import Metrics
from gemini_ls.settings import Settings

PROMPT = Prompt(system=None, user='Detect the 2d bounding boxes of:\n- "cat"', json_mode=True)


def noise_png(seed: int, width: int, height: int, name: str | None = None) -> PreparedImage:
    """A PNG of random pixels: incompressible, so its size is about width*height*3 bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=1)
    data = buf.getvalue()
    return PreparedImage(name or f"img{seed}.png", data, "image/png", width, height, width, height, hashlib.sha256(data).hexdigest())


def sample(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


def deadline(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


class Rig:
    """One backend process's worth of objects: settings, client, cache, FilesManager, caller."""

    def __init__(self, settings: Settings, make_cache: Callable[[Metrics], FileCache], **manager_kwargs) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.client = make_client(settings)
        self.cache = make_cache(self.metrics)  # one registry: cache_errors next to files_*
        self.files = FilesManager(self.client, self.cache, settings, self.metrics, **manager_kwargs)
        self.caller = GeminiCaller(self.client, settings, self.metrics)

    def task(self, images: list[PreparedImage], uses: dict[str, int] | None = None):
        reply = self.files.generate(self.caller, PROMPT, images, uses or {}, RequestKind.BOXES, deadline=deadline())
        assert reply.text is not None
        return reply

    def m(self, name: str, **labels) -> float:
        return sample(self.metrics, f"gemini_ls_{name}", **labels)


def settings_for(emu, policy: str = "always", *, api_key: str = DEFAULT_API_KEY, **extra) -> Settings:
    return Settings(api_key=api_key, base_url=emu.url, files_policy=policy, max_retries=0, **extra)


def redis_keys(url: str, prefix: str) -> dict[str, bytes]:
    raw = redis.Redis.from_url(url)
    try:
        return {k.decode(): raw.get(k) for k in raw.scan_iter(match=prefix + "*")}
    finally:
        raw.close()


# ---------------------------------------------------------------------------------- 4 processes


def _process_worker(base_url: str, redis_url: str, prefix: str, images: list[PreparedImage],
                    barrier, results) -> None:
    """One spawned backend process: its own client, Redis connection and FilesManager."""
    settings = Settings(api_key=DEFAULT_API_KEY, base_url=base_url, files_policy="always", max_retries=0)
    metrics = Metrics()
    cache = RedisFileCache(redis_url, prefix, metrics)
    rig_client = make_client(settings)
    files = FilesManager(rig_client, cache, settings, metrics)
    caller = GeminiCaller(rig_client, settings, metrics)
    ok = failed = 0
    barrier.wait(timeout=60)  # everyone starts at once, on the same image: maximum contention
    for image in images:
        try:
            reply = files.generate(caller, PROMPT, [image], {image.sha256: 1}, RequestKind.BOXES, deadline=deadline())
            ok += reply.text is not None
        except Exception:
            failed += 1
    results.put({
        "ok": ok,
        "failed": failed,
        "uploads": sample(metrics, "gemini_ls_files_uploads_total"),
        "lock_waits": sample(metrics, "gemini_ls_files_lock_waits_total"),
        "hits": sample(metrics, "gemini_ls_files_cache_total", result="hit"),
        "misses": sample(metrics, "gemini_ls_files_cache_total", result="miss"),
        "inline": sample(metrics, "gemini_ls_image_bytes_sent_total", how="inline"),
    })
    cache.close()


@pytest.mark.slow
def test_four_processes_fifty_tasks_five_images_upload_each_image_once(emu, redis_url, redis_prefix):
    emu.set_latency(0.05)  # uploads take a while, so the processes really overlap
    distinct = [noise_png(seed, 160, 120) for seed in range(5)]
    # Tasks 0-9 show image 0, 10-19 image 1, ...; process p takes tasks p, p+4, ...: all four
    # processes start on image 0 together, then move to image 1 together, and so on.
    tasks = [distinct[i // 10] for i in range(50)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_process_worker, args=(emu.url, redis_url, redis_prefix, tasks[p::4], barrier, results))
        for p in range(4)
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=180) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0

    counters = emu.counters()
    assert sum(r["ok"] for r in reports) == 50
    assert sum(r["failed"] for r in reports) == 0
    assert counters["uploads"] == 5  # the whole point: one upload per distinct image
    assert sum(r["uploads"] for r in reports) == 5
    assert counters["requests"]["generateContent"] == 50
    assert sum(r["inline"] for r in reports) == 0  # every call referenced a file
    assert sum(r["hits"] + r["misses"] for r in reports) == 50
    assert sum(r["lock_waits"] for r in reports) >= 1  # they did collide, and waited instead of uploading
    # What went over the wire: the 5 images once, plus 50 small JSON requests.
    image_bytes = sum(len(im.data) for im in distinct)
    assert image_bytes <= counters["bytes_received"] < image_bytes + 50 * 4096
    keys = redis_keys(redis_url, redis_prefix)
    assert sorted(k for k in keys if ":file:" in k) == sorted(
        f"{redis_prefix}file:{Settings(api_key=DEFAULT_API_KEY, base_url=emu.url).key_fingerprint}:{im.sha256}" for im in distinct
    )
    assert not [k for k in keys if ":lock:" in k]  # every lock was released


def test_threads_share_one_upload_with_the_embedded_cache(emu):
    rig = Rig(settings_for(emu, "always"), lambda m: MemoryFileCache())
    emu.set_latency(0.05)
    image = noise_png(42, 160, 120)
    start = threading.Barrier(8)

    def one(_):
        start.wait(timeout=30)
        return rig.task([image])

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, range(8)))
    assert len(replies) == 8
    assert emu.counters()["uploads"] == 1
    assert rig.m("files_lock_waits_total") >= 1
    assert rig.m("image_bytes_sent_total", how="inline") == 0


# ---------------------------------------------------------------------------------- reuse, expiry


def test_reprocessing_reuses_and_expired_files_are_reuploaded_once(emu, redis_url, redis_prefix):
    rig = Rig(settings_for(emu, "always"), lambda m: RedisFileCache(redis_url, redis_prefix, m))
    images = [noise_png(100 + i, 120, 90) for i in range(5)]
    tasks = images * 2  # 10 tasks, each image twice

    def batch():
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda im: rig.task([im], {im.sha256: 2}), tasks))

    batch()
    assert emu.counters()["uploads"] == 5

    batch()  # re-processing: every URI comes from Redis
    c = emu.counters()
    assert c["uploads"] == 5
    assert c["requests"]["generateContent"] == 20
    assert rig.m("files_cache_total", result="hit") >= 10

    assert emu.expire_files() == 5  # Gemini deleted them (48 h later); Redis still has the URIs
    replies = batch()
    c = emu.counters()
    assert len(replies) == 10  # no failed call
    assert c["uploads"] == 10  # exactly one re-upload per image, despite 4 threads racing on the 403s
    assert c["statuses"].get("403", 0) >= 5  # each stale URI was tried and refused
    assert rig.m("files_evictions_total") == c["statuses"]["403"]
    # The cache now holds the new URIs, and they work.
    fresh = [rig.cache.get(rig.files.cache_key(im)) for im in images]
    assert all(ref is not None for ref in fresh)
    batch()
    assert emu.counters()["uploads"] == 10
    rig.cache.close()


# ---------------------------------------------------------------------------------- Redis dies


def test_redis_killed_mid_batch_every_call_succeeds_then_cache_is_used_again(emu, restartable_redis, caplog):
    caplog.set_level(logging.WARNING, logger="gemini_ls.gemini.cache")
    rig = Rig(settings_for(emu, "always"),
              lambda m: RedisFileCache(restartable_redis.url, "ls:", m, socket_timeout=0.3, retry_interval=0.5))
    images = [noise_png(200 + i, 120, 90) for i in range(5)]
    tasks = [images[i % 5] for i in range(40)]
    done = 0
    done_lock = threading.Lock()

    def one(image):
        nonlocal done
        reply = rig.task([image], {image.sha256: 8})
        with done_lock:
            done += 1
            if done == 10:
                restartable_redis.stop()  # killed in the middle of the batch
        return reply

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(one, tasks))
    assert len(replies) == 40 and all(r.text is not None for r in replies)
    errors = sum(rig.m("cache_errors_total", op=op) for op in ("get", "put", "lock", "unlock", "delete"))
    assert errors >= 20  # about 30 tasks ran against a dead Redis
    warnings = [r for r in caplog.records if r.name == "gemini_ls.gemini.cache"]
    assert 1 <= len(warnings) <= 3  # rate-limited, not one per call
    uploads_before_restart = emu.counters()["uploads"]
    assert uploads_before_restart <= 5 + 4  # while Redis was down, images went inline instead
    assert rig.m("image_bytes_sent_total", how="inline") > 0

    restartable_redis.start()  # back, empty (no persistence)
    time.sleep(0.6)  # past the breaker's retry interval
    hits_before = rig.m("files_cache_total", result="hit")
    for image in images * 3:
        rig.task([image], {image.sha256: 3})
    assert emu.counters()["uploads"] == uploads_before_restart + 5  # one upload per image, then hits
    assert rig.m("files_cache_total", result="hit") - hits_before == 10
    assert len(redis_keys(restartable_redis.url, "ls:file:")) == 5
    assert any("answers again" in r.getMessage() for r in caplog.records)
    rig.cache.close()


# ---------------------------------------------------------------------------------- other API key


def test_two_api_keys_never_share_a_cache_entry(emu, redis_url, redis_prefix):
    emu.add_api_key("alpha-secret-key-111")
    emu.add_api_key("bravo-secret-key-222")
    a = Rig(settings_for(emu, api_key="alpha-secret-key-111"), lambda m: RedisFileCache(redis_url, redis_prefix, m))
    b = Rig(settings_for(emu, api_key="bravo-secret-key-222"), lambda m: RedisFileCache(redis_url, redis_prefix, m))
    image = noise_png(300, 120, 90)
    a.task([image])
    b.task([image])
    c = emu.counters()
    assert c["uploads"] == 2  # each key uploads its own copy
    assert "403" not in c["statuses"]  # B never even tried A's URI
    keys = redis_keys(redis_url, redis_prefix)
    assert len(keys) == 2
    assert {a.files.cache_key(image), b.files.cache_key(image)} == {k.split(":file:", 1)[1] for k in keys}
    blob = " ".join(keys) + " ".join(v.decode() for v in keys.values())
    assert "alpha-secret" not in blob and "bravo-secret" not in blob  # never the key itself
    a.cache.close()
    b.cache.close()


def test_another_keys_uri_in_the_cache_is_evicted_and_reuploaded(emu, redis_url, redis_prefix):
    emu.add_api_key("alpha-secret-key-111")
    emu.add_api_key("bravo-secret-key-222")
    a = Rig(settings_for(emu, api_key="alpha-secret-key-111"), lambda m: RedisFileCache(redis_url, redis_prefix, m))
    b = Rig(settings_for(emu, api_key="bravo-secret-key-222"), lambda m: RedisFileCache(redis_url, redis_prefix, m))
    image = noise_png(301, 120, 90)
    a.task([image])
    a_ref = a.cache.get(a.files.cache_key(image))
    # Poison B's entry with A's URI (what a cache keyed without the fingerprint would do).
    b.cache.put(b.files.cache_key(image), a_ref, 3600)
    b.task([image])  # 403 -> evict -> upload under B -> retry: succeeds
    c = emu.counters()
    assert c["statuses"]["403"] == 1
    assert c["uploads"] == 2
    assert b.m("files_evictions_total") == 1
    b_ref = b.cache.get(b.files.cache_key(image))
    assert b_ref is not None and b_ref.uri != a_ref.uri
    b.task([image])  # and from now on B's own URI just works
    assert emu.counters()["statuses"]["403"] == 1
    assert emu.counters()["uploads"] == 2
    a.cache.close()
    b.cache.close()


# ---------------------------------------------------------------------------------- PROCESSING


def test_file_stuck_in_processing_waits_bounded_then_goes_inline(emu, redis_url, redis_prefix):
    rig = Rig(settings_for(emu, "always"), lambda m: RedisFileCache(redis_url, redis_prefix, m), active_wait=1.0)
    image = noise_png(400, 120, 90)
    emu.add_fault("processing", count=1)  # the next upload never becomes ACTIVE
    started = time.monotonic()
    rig.task([image])
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3.0  # polled for about active_wait (1 s), not the 30 s deadline
    c = emu.counters()
    assert c["uploads"] == 1
    assert c["requests"]["files.get"] >= 2  # it polled, with backoff
    assert c["requests"]["files.delete"] == 1
    assert rig.m("image_bytes_sent_total", how="inline") == len(image.data)  # the call went inline
    assert rig.cache.get(rig.files.cache_key(image)) is None  # the stuck file is not cached
    assert [f.name for f in rig.client.files.list()] == []  # ...and was deleted

    rig.task([image])  # fault consumed: the next upload is ACTIVE and cached
    assert emu.counters()["uploads"] == 2
    assert rig.cache.get(rig.files.cache_key(image)) is not None
    rig.cache.close()


def test_stuck_processing_for_an_image_too_big_to_inline_is_an_error(emu):
    rig = Rig(settings_for(emu, "auto", inline_limit_bytes=80_000), lambda m: MemoryFileCache(), active_wait=0.5)
    image = noise_png(401, 160, 120)  # ~58 KB -> ~77 KB base64 + 64 KB overhead: past 80 KB
    emu.add_fault("processing", count=1)
    with pytest.raises(FilesError, match="too large to send inline"):
        rig.task([image])
    assert emu.counters()["requests"].get("generateContent", 0) == 0


# ---------------------------------------------------------------------------------- auto policy


def _kinds(parts: list[types.Part]) -> list[str]:
    return ["file" if p.file_data is not None else "inline" if p.inline_data is not None else "?" for p in parts]


def test_auto_policy_inline_reuse_and_size(emu):
    limit = 180_000
    rig = Rig(settings_for(emu, "auto", inline_limit_bytes=limit), lambda m: MemoryFileCache())
    small_once = noise_png(500, 80, 60)  # ~14 KB
    small_twice = noise_png(501, 80, 60)
    big = noise_png(502, 200, 150)  # ~90 KB -> 120 KB base64 + 64 KB overhead + prompt: past 180 KB
    assert len(big.data) * 4 // 3 < limit  # the image alone would fit: it is the request that does not

    rig.task([small_once], {small_once.sha256: 1})
    assert emu.counters()["uploads"] == 0  # single use, small: inline

    uses = {small_twice.sha256: 2}
    rig.task([small_twice], uses)
    rig.task([small_twice], uses)
    assert emu.counters()["uploads"] == 1  # needed twice: uploaded once, referenced twice
    assert rig.m("files_cache_total", result="hit") == 1

    # Once its URI is cached, even a single-use request references it.
    parts = rig.files.build([small_twice], {}, deadline=deadline()).parts
    assert _kinds(parts) == ["file"]

    rig.task([big], {big.sha256: 1})
    assert emu.counters()["uploads"] == 2  # too big for this inline limit: uploaded

    # Several images in one request: the big one becomes a file, the small ones stay inline.
    fresh = [noise_png(503, 80, 60), noise_png(504, 200, 150), noise_png(505, 80, 60)]
    parts = rig.files.build(fresh, {}, deadline=deadline(), prompt_bytes=100).parts
    assert _kinds(parts) == ["inline", "file", "inline"]
    assert emu.counters()["uploads"] == 3
    assert rig.m("image_bytes_sent_total", how="inline") == len(small_once.data) + len(fresh[0].data) + len(fresh[2].data)


def test_never_policy_does_not_touch_the_files_api(emu):
    rig = Rig(settings_for(emu, "never"), lambda m: MemoryFileCache())
    image = noise_png(600, 80, 60)
    for _ in range(3):
        rig.task([image], {image.sha256: 3})
    c = emu.counters()
    assert c["uploads"] == 0
    assert rig.m("files_cache_total", result="miss") == 0  # no lookups either
    assert rig.m("image_bytes_sent_total", how="inline") == 3 * len(image.data)


def test_cached_fileref_points_at_the_uploaded_file(emu, redis_url, redis_prefix):
    rig = Rig(settings_for(emu, "always"), lambda m: RedisFileCache(redis_url, redis_prefix, m))
    image = noise_png(700, 80, 60)
    rig.task([image])
    ref = rig.cache.get(rig.files.cache_key(image))
    assert isinstance(ref, FileRef)
    remote = rig.client.files.get(name=ref.name)
    assert remote.uri == ref.uri and remote.mime_type == ref.mime_type == "image/png"
    assert ref.size_bytes == len(image.data)
    assert abs(ref.expiration - remote.expiration_time.timestamp()) < 1
    # Redis forgets it an hour before Gemini deletes it (48 h lifetime).
    pttl = redis.Redis.from_url(redis_url).pttl(f"{redis_prefix}file:{rig.files.cache_key(image)}")
    assert 46.9 * 3600_000 < pttl <= 47 * 3600_000
    rig.cache.close()


# ---------------------------------------------------------------------------------- dead lock holder


def test_waiter_takes_over_when_the_lock_holder_dies(emu, redis_url, redis_prefix):
    rig = Rig(settings_for(emu, "always"), lambda m: RedisFileCache(redis_url, redis_prefix, m))
    image = noise_png(800, 80, 60)
    # Another replica took the lock and died before uploading: its lock lives 1 s more.
    assert rig.cache.lock(rig.files.cache_key(image), 1.0) is not None
    started = time.monotonic()
    rig.task([image])
    assert 0.9 <= time.monotonic() - started < 3.0  # waited for the lock to expire, not longer
    assert rig.m("files_lock_waits_total") == 1
    assert emu.counters()["uploads"] == 1
    assert rig.m("image_bytes_sent_total", how="inline") == 0
    assert rig.cache.get(rig.files.cache_key(image)) is not None
    rig.cache.close()


def test_waiter_goes_inline_when_its_deadline_comes_first(emu, redis_url, redis_prefix):
    rig = Rig(settings_for(emu, "always"), lambda m: RedisFileCache(redis_url, redis_prefix, m))
    image = noise_png(801, 80, 60)
    assert rig.cache.lock(rig.files.cache_key(image), 30.0) is not None  # a slow uploader elsewhere
    started = time.monotonic()
    parts = rig.files.build([image], {image.sha256: 5}, deadline=time.monotonic() + 1.0).parts
    assert time.monotonic() - started < 0.8  # gave the file at most half the time left, then inline
    assert _kinds(parts) == ["inline"]
    assert emu.counters()["uploads"] == 0
    rig.cache.close()
