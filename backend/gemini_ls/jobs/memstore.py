"""The job store without REDIS_URL: this process's jobs only (the embedded default; nothing survives
a restart, and the commands say so). The same records as state.py's RedisJobStore. One store per
process (`process_store`): what this process's commands and click remainders (jobs/remainders.py)
record is what its page lists."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from ..gemini.pricing import Tokens
from .records import BatchRecord, JobInfo, batch_job_id

KEPT_JOBS = 1000  # a long-running server forgets its oldest finished jobs beyond this many


class MemoryJobStore:
    """The embedded default without REDIS_URL: one process's jobs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobInfo] = {}
        self._configs: dict[str, str] = {}
        self._rq: dict[str, list[str]] = {}

    def create(self, info, label_config):
        with self._lock:
            self._jobs[info.id] = info
            self._configs[info.id] = label_config
            if len(self._jobs) > KEPT_JOBS:
                for old in sorted((j for j in self._jobs.values() if j.finished), key=lambda j: j.created)[:len(self._jobs) - KEPT_JOBS]:
                    self._jobs.pop(old.id, None)
                    self._configs.pop(old.id, None)
                    self._rq.pop(old.id, None)

    def set_chunks(self, job_id, chunks, rq_ids):
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], chunks=chunks)
            self._rq[job_id] = list(rq_ids)

    def mark_done(self, job_id, task_ids):
        ids = set(task_ids)
        with self._lock:
            job = self._jobs[job_id]
            self._jobs[job_id] = replace(job, done=job.done | ids, failed={k: v for k, v in job.failed.items() if k not in ids})

    def mark_failed(self, job_id, reasons):
        with self._lock:
            job = self._jobs[job_id]
            self._jobs[job_id] = replace(job, failed={**job.failed, **{k: v for k, v in reasons.items() if k not in job.done}})

    def mark_elsewhere(self, job_id, holders):
        with self._lock:
            job = self._jobs[job_id]
            self._jobs[job_id] = replace(job, elsewhere={**job.elsewhere, **holders})

    def get(self, job_id):
        with self._lock:
            return self._jobs.get(job_id)

    def config(self, job_id):
        with self._lock:
            return self._configs.get(job_id)

    def rq_ids(self, job_id):
        with self._lock:
            return list(self._rq.get(job_id, ()))

    def recent(self, limit=20):
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j.created)[:limit]


_process_store: MemoryJobStore | None = None
_process_lock = threading.Lock()


def process_store() -> MemoryJobStore:
    """This process's job store (without REDIS_URL): shared by its commands, its click remainders and its page."""
    global _process_store
    with _process_lock:
        if _process_store is None:
            _process_store = MemoryJobStore()
        return _process_store


class MemoryBatchState:
    """A batch job's part of the store, in this process only: a restarted process starts the job afresh."""

    durable = False

    def __init__(self, project: int | str, model_version: str) -> None:
        self.job = batch_job_id(project, model_version)
        self._lock = threading.Lock()
        self._batches: dict[str, BatchRecord] = {}
        self._submitting: str | None = None
        self._meta: dict[str, dict[str, tuple[int, int]]] = {}
        self._parts: dict[str, dict[int, list[dict]]] = {}
        self._written: set[str] = set()
        self._failed: dict[str, str] = {}
        self._elsewhere: dict[str, str] = {}
        self._usage: dict[str, Tokens] = {}
        self._cancelled = False
        self.total = 0

    def set_total(self, total: int) -> None:
        self.total = total

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
            ids = {str(t) for t in task_ids}
            self._written.update(ids)
            for t in ids:
                self._failed.pop(t, None)

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

    def add_elsewhere(self, holders: Mapping[Any, str]) -> None:
        with self._lock:
            self._elsewhere.update({str(k): v for k, v in holders.items()})

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
