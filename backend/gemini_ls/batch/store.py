"""A batch pre-label job's state, kept where a restarted process finds it: Redis when REDIS_URL is
set (per project and model_version), else this process's memory (then nothing survives a restart,
and the CLI says so).

One job = one (project, model_version); it runs one batch per model its requests are routed to
(a mask project sends masks to GEMINI_MASK_MODEL, the rest to GEMINI_MODEL), and a task's
prediction is written once the results of all its requests are in. Its keys, under
`{REDIS_PREFIX}batch:{project}:{version}:`:

    batches     hash  batch name -> JSON {state, display_name, requests, source, model}
    submitting  str   the display name of a batch being created (set BEFORE batches.create, so a
                      process killed between create and recording the name finds it by listing)
    meta        hash  task id -> JSON {image name: [width, height]} (region conversion after a restart)
    parts       hash  task id -> JSON {request index: regions} of requests whose batch ended before
                      the batch of the task's other model (kept until the task is written)
    written     set   task ids whose prediction Label Studio holds
    failed      hash  task id -> "reason: message" (reported, not asked again)
    usage       hash  "model|prompt" / output / thoughts / requests token sums of every result read
    cancelled   str   set by `gemini-ls jobs cancel`: no resubmission after that

A batch's record stays active (SUBMITTED / PENDING / RUNNING) until its results are all handled,
so a process killed while reading them reads them again; what it already wrote is in `written`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import redis

    from ..redisconn import Profile

from ..gemini.pricing import Tokens

ACTIVE_STATES = ("PENDING", "RUNNING", "SUBMITTED")


def job_id(project: int | str, model_version: str) -> str:
    return f"batch:{project}:{model_version}"


def parse_job_id(value: str) -> tuple[str, str] | None:
    parts = value.split(":", 2)
    if len(parts) != 3 or parts[0] != "batch" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass(frozen=True)
class BatchRecord:
    name: str
    state: str
    display_name: str
    requests: int
    source: str  # inline | file
    model: str = ""  # the model the batch runs ("" in records written before batches were per model)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


class JobStore(Protocol):
    durable: bool
    job: str

    def batches(self) -> list[BatchRecord]: ...
    def put_batch(self, record: BatchRecord) -> None: ...
    def submitting(self) -> str | None: ...
    def set_submitting(self, display_name: str | None) -> None: ...
    def put_meta(self, task_id: Any, metas: dict[str, tuple[int, int]]) -> None: ...
    def meta(self, task_id: Any) -> dict[str, tuple[int, int]] | None: ...
    def put_parts(self, task_id: Any, parts: dict[int, list[dict]]) -> None: ...
    def parts(self, task_id: Any) -> dict[int, list[dict]]: ...
    def parts_of(self, task_ids: Iterable[Any]) -> dict[str, set[int]]: ...
    def drop_parts(self, task_id: Any, indexes: Iterable[int]) -> None: ...
    def add_written(self, task_ids: Iterable[Any]) -> None: ...
    def written(self) -> set[str]: ...
    def add_failed(self, task_id: Any, reason: str) -> None: ...
    def clear_failed(self, task_ids: Iterable[Any]) -> None: ...
    def failed(self) -> dict[str, str]: ...
    def add_usage(self, model: str, tokens: Tokens) -> None: ...
    def usage(self) -> dict[str, Tokens]: ...  # model -> token sums
    def cancel(self, on: bool = True) -> None: ...
    def cancelled(self) -> bool: ...


def _record(name: str, raw: str | bytes) -> BatchRecord:
    data = json.loads(raw)
    return BatchRecord(name, data["state"], data.get("display_name", ""), int(data.get("requests", 0)),
                       data.get("source", "inline"), data.get("model", ""))


def _encode(record: BatchRecord) -> str:
    return json.dumps({"state": record.state, "display_name": record.display_name,
                       "requests": record.requests, "source": record.source, "model": record.model})


_TOKEN_FIELDS = ("prompt", "output", "thoughts", "requests")


def _usage_from(raw: dict[str, str]) -> dict[str, Tokens]:
    """{"model|prompt": "12", ...} -> {model: Tokens}"""
    fields: dict[str, dict[str, int]] = {}
    for key, value in raw.items():
        model, _, name = key.rpartition("|")
        if model and name in _TOKEN_FIELDS:
            fields.setdefault(model, {})[name] = int(value)
    return {model: Tokens(**f) for model, f in sorted(fields.items())}


def store_client(redis_url: str, profile: Profile | None = None) -> redis.Redis:
    """The process's str-replies client (redisconn.py): `job-text` unless told otherwise (/metrics: `request-text`)."""
    from .. import redisconn

    return redisconn.client(redis_url, profile or redisconn.JOB_TEXT)


class RedisJobStore:
    durable = True

    def __init__(self, redis_url: str, prefix: str, project: int | str, model_version: str, *, client: Any = None) -> None:
        """`client`: a Redis client with decode_responses=True to share (the server's /metrics
        reads every job per scrape through one); else one is made for this store."""
        self.job = job_id(project, model_version)
        self._r: redis.Redis = client if client is not None else store_client(redis_url)
        self._prefix = prefix
        self._k = f"{prefix}{self.job}:"
        self._r.sadd(f"{prefix}batch:jobs", self.job)

    @classmethod
    def jobs(cls, redis_url: str, prefix: str, *, client: Any = None) -> list[str]:
        client = store_client(redis_url) if client is None else client
        return sorted(client.smembers(f"{prefix}batch:jobs"))

    def counts(self) -> tuple[int, int]:
        """(written, failed) task counts, without reading the sets themselves."""
        return int(self._r.scard(self._k + "written")), int(self._r.hlen(self._k + "failed"))  # type: ignore[arg-type]

    def batches(self) -> list[BatchRecord]:
        raw: dict[str, str] = self._r.hgetall(self._k + "batches")  # type: ignore[assignment]
        return [_record(name, value) for name, value in sorted(raw.items())]

    def put_batch(self, record: BatchRecord) -> None:
        self._r.hset(self._k + "batches", record.name, _encode(record))

    def submitting(self) -> str | None:
        value = self._r.get(self._k + "submitting")
        return str(value) if value else None

    def set_submitting(self, display_name: str | None) -> None:
        if display_name is None:
            self._r.delete(self._k + "submitting")
        else:
            self._r.set(self._k + "submitting", display_name)

    def put_meta(self, task_id: Any, metas: dict[str, tuple[int, int]]) -> None:
        self._r.hset(self._k + "meta", str(task_id), json.dumps(metas))

    def meta(self, task_id: Any) -> dict[str, tuple[int, int]] | None:
        raw = self._r.hget(self._k + "meta", str(task_id))
        return {k: (int(v[0]), int(v[1])) for k, v in json.loads(str(raw)).items()} if raw else None

    def put_parts(self, task_id: Any, parts: dict[int, list[dict]]) -> None:
        if parts:  # one job is run by one process at a time, so read-merge-write is safe
            merged = {**self.parts(task_id), **parts}
            self._r.hset(self._k + "parts", str(task_id), json.dumps({str(i): r for i, r in merged.items()}))

    def parts(self, task_id: Any) -> dict[int, list[dict]]:
        raw = self._r.hget(self._k + "parts", str(task_id))
        return {int(i): r for i, r in json.loads(str(raw)).items()} if raw else {}

    def parts_of(self, task_ids: Iterable[Any]) -> dict[str, set[int]]:
        """Which request indexes of these tasks already have their regions kept."""
        ids = [str(t) for t in task_ids]
        out: dict[str, set[int]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for tid, raw in zip(chunk, self._r.hmget(self._k + "parts", chunk)):  # type: ignore[arg-type]
                if raw:
                    out[tid] = {int(i) for i in json.loads(str(raw))}
        return out

    def drop_parts(self, task_id: Any, indexes: Iterable[int]) -> None:
        kept = self.parts(task_id)
        for i in indexes:
            kept.pop(i, None)
        if kept:
            self._r.hset(self._k + "parts", str(task_id), json.dumps({str(i): r for i, r in kept.items()}))
        else:
            self._r.hdel(self._k + "parts", str(task_id))

    def add_written(self, task_ids: Iterable[Any]) -> None:
        ids = [str(t) for t in task_ids]
        if ids:
            self._r.sadd(self._k + "written", *ids)

    def written(self) -> set[str]:
        return set(self._r.smembers(self._k + "written"))  # type: ignore[arg-type]

    def add_failed(self, task_id: Any, reason: str) -> None:
        self._r.hset(self._k + "failed", str(task_id), reason)

    def clear_failed(self, task_ids: Iterable[Any]) -> None:
        ids = [str(t) for t in task_ids]
        if ids:
            self._r.hdel(self._k + "failed", *ids)

    def failed(self) -> dict[str, str]:
        return dict(self._r.hgetall(self._k + "failed"))  # type: ignore[arg-type]

    def add_usage(self, model: str, tokens: Tokens) -> None:
        pipe = self._r.pipeline()
        for name in _TOKEN_FIELDS:
            pipe.hincrby(self._k + "usage", f"{model}|{name}", getattr(tokens, name))
        pipe.execute()

    def usage(self) -> dict[str, Tokens]:
        return _usage_from(self._r.hgetall(self._k + "usage"))  # type: ignore[arg-type]

    def cancel(self, on: bool = True) -> None:
        if on:
            self._r.set(self._k + "cancelled", 1)
        else:
            self._r.delete(self._k + "cancelled")

    def cancelled(self) -> bool:
        return bool(self._r.exists(self._k + "cancelled"))


class MemoryJobStore:
    """The same, in this process only (no REDIS_URL): a restarted process starts the job afresh."""

    durable = False

    def __init__(self, project: int | str, model_version: str) -> None:
        self.job = job_id(project, model_version)
        self._lock = threading.Lock()
        self._batches: dict[str, BatchRecord] = {}
        self._submitting: str | None = None
        self._meta: dict[str, dict[str, tuple[int, int]]] = {}
        self._parts: dict[str, dict[int, list[dict]]] = {}
        self._written: set[str] = set()
        self._failed: dict[str, str] = {}
        self._usage: dict[str, Tokens] = {}
        self._cancelled = False

    def batches(self) -> list[BatchRecord]:
        with self._lock:
            return [self._batches[k] for k in sorted(self._batches)]

    def put_batch(self, record: BatchRecord) -> None:
        with self._lock:
            self._batches[record.name] = record

    def submitting(self) -> str | None:
        return self._submitting

    def set_submitting(self, display_name: str | None) -> None:
        self._submitting = display_name

    def put_meta(self, task_id: Any, metas: dict[str, tuple[int, int]]) -> None:
        with self._lock:
            self._meta[str(task_id)] = dict(metas)

    def meta(self, task_id: Any) -> dict[str, tuple[int, int]] | None:
        with self._lock:
            return self._meta.get(str(task_id))

    def put_parts(self, task_id: Any, parts: dict[int, list[dict]]) -> None:
        with self._lock:
            self._parts.setdefault(str(task_id), {}).update(parts)

    def parts(self, task_id: Any) -> dict[int, list[dict]]:
        with self._lock:
            return dict(self._parts.get(str(task_id), {}))

    def parts_of(self, task_ids: Iterable[Any]) -> dict[str, set[int]]:
        with self._lock:
            return {t: set(self._parts[t]) for t in (str(x) for x in task_ids) if self._parts.get(t)}

    def drop_parts(self, task_id: Any, indexes: Iterable[int]) -> None:
        with self._lock:
            kept = self._parts.get(str(task_id), {})
            for i in indexes:
                kept.pop(i, None)

    def add_written(self, task_ids: Iterable[Any]) -> None:
        with self._lock:
            self._written.update(str(t) for t in task_ids)

    def written(self) -> set[str]:
        with self._lock:
            return set(self._written)

    def add_failed(self, task_id: Any, reason: str) -> None:
        with self._lock:
            self._failed[str(task_id)] = reason

    def clear_failed(self, task_ids: Iterable[Any]) -> None:
        with self._lock:
            for t in task_ids:
                self._failed.pop(str(t), None)

    def failed(self) -> dict[str, str]:
        with self._lock:
            return dict(self._failed)

    def add_usage(self, model: str, tokens: Tokens) -> None:
        with self._lock:
            self._usage[model] = self._usage.get(model, Tokens()) + tokens

    def usage(self) -> dict[str, Tokens]:
        with self._lock:
            return dict(sorted(self._usage.items()))

    def cancel(self, on: bool = True) -> None:
        self._cancelled = on

    def cancelled(self) -> bool:
        return self._cancelled
