"""A batch pre-label job's state, kept where a restarted process finds it: Redis when REDIS_URL is
set (per project and model_version), else this process's memory (then nothing survives a restart,
and the CLI says so).

One job = one (project, model_version). Its keys, under `{REDIS_PREFIX}batch:{project}:{version}:`:

    batches     hash  batch name -> JSON {state, display_name, requests, source}
    submitting  str   the display name of a batch being created (set BEFORE batches.create, so a
                      process killed between create and recording the name finds it by listing)
    meta        hash  task id -> JSON {image name: [width, height]} (region conversion after a restart)
    written     set   task ids whose prediction Label Studio holds
    failed      hash  task id -> "reason: message" (reported, not asked again)
    usage       hash  prompt / output / thoughts / requests token sums of every result read
    cancelled   str   set by `gemini-ls jobs cancel`: no resubmission after that

A batch's record stays active (SUBMITTED / PENDING / RUNNING) until its results are all handled,
so a process killed while reading them reads them again; what it already wrote is in `written`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .pricing import Tokens

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
    def add_written(self, task_ids: Iterable[Any]) -> None: ...
    def written(self) -> set[str]: ...
    def add_failed(self, task_id: Any, reason: str) -> None: ...
    def clear_failed(self, task_ids: Iterable[Any]) -> None: ...
    def failed(self) -> dict[str, str]: ...
    def add_usage(self, tokens: Tokens) -> None: ...
    def usage(self) -> Tokens: ...
    def set_model(self, model: str) -> None: ...
    def model(self) -> str | None: ...
    def cancel(self, on: bool = True) -> None: ...
    def cancelled(self) -> bool: ...


def _record(name: str, raw: str | bytes) -> BatchRecord:
    data = json.loads(raw)
    return BatchRecord(name, data["state"], data.get("display_name", ""), int(data.get("requests", 0)),
                       data.get("source", "inline"))


def _encode(record: BatchRecord) -> str:
    return json.dumps({"state": record.state, "display_name": record.display_name,
                       "requests": record.requests, "source": record.source})


class RedisJobStore:
    durable = True

    def __init__(self, redis_url: str, prefix: str, project: int | str, model_version: str) -> None:
        import redis

        self.job = job_id(project, model_version)
        self._r = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5, decode_responses=True)
        self._prefix = prefix
        self._k = f"{prefix}{self.job}:"
        self._r.sadd(f"{prefix}batch:jobs", self.job)

    @classmethod
    def jobs(cls, redis_url: str, prefix: str) -> list[str]:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=10, decode_responses=True)
        try:
            return sorted(client.smembers(f"{prefix}batch:jobs"))  # type: ignore[arg-type]
        finally:
            client.close()

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

    def add_usage(self, tokens: Tokens) -> None:
        pipe = self._r.pipeline()
        for field in ("prompt", "output", "thoughts", "requests"):
            pipe.hincrby(self._k + "usage", field, getattr(tokens, field))
        pipe.execute()

    def usage(self) -> Tokens:
        raw: dict[str, str] = self._r.hgetall(self._k + "usage")  # type: ignore[assignment]
        return Tokens(**{f: int(raw.get(f, 0)) for f in ("prompt", "output", "thoughts", "requests")})

    def set_model(self, model: str) -> None:
        """The model the job's batches run (its tokens are priced at that model's rates)."""
        self._r.set(self._k + "model", model)

    def model(self) -> str | None:
        value = self._r.get(self._k + "model")
        return str(value) if value else None

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
        self._written: set[str] = set()
        self._failed: dict[str, str] = {}
        self._usage = Tokens()
        self._model: str | None = None
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

    def add_usage(self, tokens: Tokens) -> None:
        with self._lock:
            self._usage = self._usage + tokens

    def usage(self) -> Tokens:
        with self._lock:
            return self._usage

    def cancel(self, on: bool = True) -> None:
        self._cancelled = on

    def cancelled(self) -> bool:
        return self._cancelled

    def set_model(self, model: str) -> None:
        self._model = model

    def model(self) -> str | None:
        return self._model
