"""The Gemini API key (and Label Studio's token) never leave the process: a representative slice
of the fault matrix runs with distinctive keys, and every log line (all loggers, DEBUG, with
tracebacks), everything written to stdout/stderr, every response (status line, headers, body),
/metrics, /health and every Redis key and value under the prefix is searched for them."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import quote

import redis
import requests

from tests.faults.common import CONFIG, good_task, png, predict_response, url_task

CANARY = "AIzaSyLEAK" + uuid.uuid4().hex.upper()  # shaped like a real key, unique per run
WRONG = "AIzaSyWRONG" + uuid.uuid4().hex.upper()  # a key Gemini refuses: its error must not echo it
LS_CANARY = "lsLEAK" + uuid.uuid4().hex


def _forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), secret[:24]]  # as sent, URL-encoded, a long prefix


def test_api_key_never_leaks(backend_factory, emu, image_server, redis_url, redis_prefix, caplog, capfd):
    caplog.set_level(logging.DEBUG)  # every logger, every level
    emu.add_api_key(CANARY)
    backend = backend_factory(
        GEMINI_API_KEY=CANARY, GOOGLE_API_KEY=None, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
        GEMINI_FILES="always", GEMINI_CONCURRENCY="1", GEMINI_MAX_RETRIES="1", PREDICT_TIMEOUT="20",
        LABEL_STUDIO_URL=image_server.base_url, LABEL_STUDIO_API_KEY=LS_CANARY, LOG_LEVEL="DEBUG",
    )
    seen: list[str] = []

    def record(resp: requests.Response) -> requests.Response:
        seen.append(f"{resp.status_code} {resp.reason}")
        seen.extend(f"{k}: {v}" for k, v in resp.headers.items())
        seen.append(resp.text)
        return resp

    def batch(tasks):
        return record(predict_response(backend, tasks))

    image_server.add("/data/upload/1/ok.png", png(4))
    image_server.add("/data/upload/1/denied.png", b'{"detail":"no"}', status=401, content_type="application/json")
    image_server.add("/broken.jpg", b"\xff\xd8\xff\xe0garbage")

    # Gemini faults
    emu.add_fault("429", count=1, args={"retry_delay": 0.2})
    batch([good_task(1)])
    emu.add_fault("500", count=2)
    batch([good_task(2), good_task(3)])
    emu.add_fault("drop", count=2)
    batch([good_task(4), good_task(5)])
    for fault in ("safety_block", "empty_candidates", "truncate", "prose"):
        emu.add_fault(fault, count=1)
        batch([good_task(6), good_task(7)])
    # Files API: cached URI, then expired -> evict + re-upload
    batch([good_task(8, seed=1)])
    emu.expire_files()
    batch([good_task(9, seed=1)])
    # images: Label Studio with its token, a refusal, a corrupt file, SSRF
    batch([
        url_task(10, "/data/upload/1/ok.png"),
        url_task(11, "/data/upload/1/denied.png"),
        url_task(12, image_server.url("/broken.jpg")),
        url_task(13, "http://169.254.169.254/latest/meta-data/"),
    ])
    # interactive mode: the error rides in the HTTP status line
    emu.add_fault("500", count=2)
    record(backend.post("/predict", {"tasks": [good_task(14)], "label_config": CONFIG, "params": {"context": {"result": []}}}))
    # a bad config, a webhook, setup with Label Studio's token
    batch_resp = backend.post("/predict", {"tasks": [good_task(15)], "label_config": "<View>"})
    record(batch_resp)
    record(backend.post("/webhook", {"action": "ANNOTATION_CREATED", "task": {"id": 10}, "annotation": {"id": 1, "result": []}}))
    record(backend.post("/setup", {"project": "1.1", "schema": CONFIG, "hostname": image_server.base_url, "access_token": LS_CANARY}))
    record(backend.get("/health"))
    record(backend.get("/metrics"))

    # A second backend with a key Gemini refuses
    wrong = backend_factory(GEMINI_API_KEY=WRONG, GOOGLE_API_KEY=None, LOG_LEVEL="DEBUG")
    resp = record(predict_response(wrong, [good_task(20)]))
    assert "result" not in resp.json()["results"][0]
    assert "api key" in resp.json()["results"][0]["error"].lower()
    record(wrong.get("/health"))
    record(wrong.get("/metrics"))

    # the Files API path was really taken and the cache really written
    assert backend.metric("gemini_ls_files_uploads_total") >= 2
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        redis_dump = []
        for key in client.scan_iter(match=redis_prefix + "*"):
            redis_dump.append(key.decode())
            if client.type(key) == b"string":
                redis_dump.append(client.get(key).decode("utf-8", "replace"))
    finally:
        client.close()
    assert any(":file:" in k for k in redis_dump), redis_dump

    out, err = capfd.readouterr()
    haystacks = {
        "log messages": "\n".join(r.getMessage() for r in caplog.records),
        "log output with tracebacks": caplog.text,
        "log record args": "\n".join(repr(r.args) for r in caplog.records),
        "stdout/stderr": out + err,
        "HTTP responses": "\n".join(seen),
        "redis": "\n".join(redis_dump),
        "metrics": backend.get("/metrics").text + wrong.get("/metrics").text,
    }
    assert len(caplog.records) > 50 and len(seen) > 20  # we did look at something
    for secret_name, secret in (("GEMINI_API_KEY", CANARY), ("wrong GEMINI_API_KEY", WRONG), ("LABEL_STUDIO_API_KEY", LS_CANARY)):
        for where, text in haystacks.items():
            for form in _forms(secret):
                assert form not in text, f"{secret_name} found in {where}: ...{text[max(0, text.find(form) - 200):text.find(form) + 60]}..."
    # and Label Studio's token did go where it belongs: to Label Studio only
    sent = image_server.requests("/data/upload/1/ok.png")[0].headers.get("authorization")
    assert sent == f"Token {LS_CANARY}"
