"""Helpers of the fault matrix: small scenes, one-call /predict, and the per-fault contract checks.

The contract every fault test checks (tests/faults/README.md):
1. the faulty task gets a clear error (an entry without `result`, with `error` naming the cause);
2. the failure is logged with the task id and counted in /metrics;
3. the good task beside it in the same batch succeeds, with correct geometry;
4. the process stays up (GET /health answers 200 after).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gemini_ls.emulator.scenes import Scene, encode_image, make_scene
from tests.helpers import config, data_uri, rect_control, rect_ious

CONFIG = config(rect_control())

# Small scenes: the fault matrix must stay fast on a 2-core runner.
W, H = 160, 120


@functools.lru_cache(maxsize=64)
def scene(seed: int, n: int = 2, w: int = W, h: int = H) -> Scene:
    return make_scene(w, h, n, seed=seed)


@functools.lru_cache(maxsize=64)
def png(seed: int, n: int = 2, w: int = W, h: int = H) -> bytes:
    return encode_image(scene(seed, n, w, h).image, "png")


@functools.lru_cache(maxsize=16)
def jpeg(seed: int, n: int = 2, w: int = W, h: int = H) -> bytes:
    return encode_image(scene(seed, n, w, h).image, "jpeg")


def good_task(task_id: Any, seed: int | None = None) -> dict:
    seed = task_id if seed is None and isinstance(task_id, int) else (seed or 1)
    return {"id": task_id, "data": {"image": data_uri(png(seed), "image/png")}}


def url_task(task_id: Any, url: str) -> dict:
    return {"id": task_id, "data": {"image": url}}


def predict_response(backend, tasks: Sequence[Mapping], label_config: str | None = CONFIG, **kw):
    body: dict[str, Any] = {"tasks": list(tasks), "project": "7.1", "params": {"context": None}}
    if label_config is not None:
        body["label_config"] = label_config
    return backend.post("/predict", body, **kw)


def predict(backend, tasks: Sequence[Mapping], label_config: str | None = CONFIG, **kw) -> list[dict]:
    resp = predict_response(backend, tasks, label_config, **kw)
    assert resp.status_code == 200, f"{resp.status_code} {resp.reason}: {resp.text[:500]}"
    results = resp.json()["results"]
    assert len(results) == len(tasks), results
    return results


def assert_good(entry: Mapping, seed: int, min_iou: float = 0.9) -> None:
    """The good task of the batch: every object found, boxes within IoU >= min_iou."""
    assert "result" in entry, f"the good task failed: {entry}"
    sc = scene(seed)
    ious = rect_ious(entry["result"], sc)
    assert len(ious) == len(sc.objects) and min(ious) >= min_iou, ious
    for region in entry["result"]:
        assert (region["original_width"], region["original_height"]) == (sc.width, sc.height)


def assert_failed(entry: Mapping, *words: str) -> str:
    """A failed entry: no `result` (Label Studio stores nothing), an `error` naming the cause."""
    assert "result" not in entry, f"expected a failure, got {entry}"
    error = entry.get("error") or ""
    assert error, entry
    low = error.lower()
    for word in words:
        assert word.lower() in low, f"{word!r} not in error {error!r}"
    return error


def assert_alive(backend) -> None:
    resp = backend.get("/health")
    assert resp.status_code == 200 and resp.json()["status"] == "UP", resp.text


def logged_for_task(caplog, task_id: Any, *words: str, level: int = logging.WARNING) -> logging.LogRecord:
    """The log record that reports task `task_id`'s failure (all `words` in it, at >= `level`)."""
    pattern = re.compile(rf"\btask {re.escape(str(task_id))}\b")
    found = []
    for record in caplog.records:
        if record.levelno < level or not record.name.startswith("gemini_ls"):
            continue
        message = record.getMessage()
        if pattern.search(message):
            found.append(record)
            if all(w.lower() in message.lower() for w in words):
                return record
    raise AssertionError(
        f"no log line for task {task_id} with {words}; lines about it: {[r.getMessage() for r in found]}"
    )


def failures(backend, reason: str) -> float:
    return backend.metric("gemini_ls_task_failures_total", reason=reason)


def failure_reasons(backend) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in backend.backend.metrics.registry.collect():
        if metric.name == "gemini_ls_task_failures":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.value:
                    out[sample.labels["reason"]] = sample.value
    return out


def metrics_text(backend, **kw) -> str:
    resp = backend.get("/metrics", **kw)
    assert resp.status_code == 200, resp.text
    return resp.text


def sample_from_text(text: str, name: str, **labels: str) -> float:
    """A sample's value from Prometheus text (what /metrics really served)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head == name and not labels:
            return float(value)
        if head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0


def check_contract(backend, caplog, entry: Mapping, task_id: Any, reason_prefix: str, *words: str) -> str:
    """Points 1, 2 and 4 of the contract for one failed task (3 is checked by the caller)."""
    error = assert_failed(entry, *words)
    logged_for_task(caplog, task_id)
    reasons = failure_reasons(backend)
    assert any(r.startswith(reason_prefix) for r in reasons), (reason_prefix, reasons)
    text = metrics_text(backend)
    assert any(
        f'reason="{r}"' in line
        for r in reasons
        if r.startswith(reason_prefix)
        for line in text.splitlines()
        if line.startswith("gemini_ls_task_failures_total")
    ), "the failure is not in /metrics"
    assert_alive(backend)
    return error


def all_text(values: Iterable[Any]) -> str:
    return "\n".join(str(v) for v in values)
