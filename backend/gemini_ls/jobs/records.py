"""What a job is, as every part of the job system and the page see it: pure typed records, no I/O.
Where they are kept: state.py (Redis, its docstring has the key schema) and memstore.py (one process)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..gemini.pricing import Tokens

PRELABEL, BATCH = "prelabel", "batch"
ACTIVE_STATES = ("PENDING", "RUNNING", "SUBMITTED")  # a Batch API job that has not ended
WAITING = "waiting for the Batch API"
STOPPED = "stopped"  # a prelabel job --max-cost stopped before a chunk would pass the cap


def batch_job_id(project: int | str, model_version: str) -> str:
    return f"batch:{project}:{model_version}"


def parse_batch_job_id(value: str) -> tuple[str, str] | None:
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


@dataclass(frozen=True)
class JobInfo:
    id: str
    project: int
    model_version: str
    total: int
    created: float
    ls_url: str = ""
    force: bool = False
    # the remainder of a "Retrieve predictions" click: the click's claim owner, whose running tasks
    # this job waits for (written by the click's process, or taken over when that process died)
    handed_by: str = ""
    chunks: int = 0
    done: frozenset[int] = frozenset()
    failed: Mapping[int, str] = field(default_factory=dict)
    elsewhere: Mapping[int, str] = field(default_factory=dict)
    kind: str = PRELABEL
    cancelled: bool = False
    batches: tuple[BatchRecord, ...] = ()  # batch: its Batch API jobs
    usage: Mapping[str, Tokens] = field(default_factory=dict)  # model -> token sums (batch, and prelabel chunks)
    submitting: bool = False  # batch: a batches.create is (or was, when killed) under way
    stopped: str = ""  # why --max-cost stopped the job (jobs/budget.py); "" while it may go on

    @property
    def finished(self) -> bool:
        return len(self.done | set(self.failed) | set(self.elsewhere)) >= self.total

    @property
    def state(self) -> str:
        return counts_of(self).state

    def summary(self) -> dict:
        return counts_of(self).summary()


@dataclass(frozen=True)
class JobCounts:
    """A job read cheaply (counts, not the task sets): what a list of jobs shows."""

    id: str
    kind: str
    project: str
    model_version: str
    total: int
    created: float
    done: int
    failed: Mapping[str, str]  # task id (or a position, in a list) -> reason
    elsewhere: int
    cancelled: bool = False
    batches: tuple[BatchRecord, ...] = ()
    usage: Mapping[str, Tokens] = field(default_factory=dict)
    submitting: bool = False
    stopped: str = ""

    @property
    def finished(self) -> bool:
        return self.done + len(self.failed) + self.elsewhere >= self.total

    @property
    def waiting(self) -> bool:
        """A batch job whose Batch API jobs have not all ended (nothing of ours runs meanwhile)."""
        return self.submitting or any(b.active for b in self.batches)

    @property
    def state(self) -> str:
        if self.cancelled and (self.kind == BATCH or not self.finished):
            return "cancelled"
        if self.waiting:
            return WAITING
        if self.stopped and not self.finished:
            return STOPPED
        if not self.finished:
            return "running"
        return "failed" if self.failed else "finished"

    def failed_by_reason(self) -> dict[str, int]:
        return by_reason(self.failed)

    def summary(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "project": self.project, "model_version": self.model_version,
            "state": self.state, "total": self.total, "done": self.done, "failed": len(self.failed),
            "elsewhere": self.elsewhere, "failed_by_reason": self.failed_by_reason(), "created": self.created,
        }


def by_reason(failed: Mapping[Any, str]) -> dict[str, int]:
    """Failures counted by reason: the part of each message before its first ':'."""
    reasons: dict[str, int] = {}
    for why in failed.values():
        key = why.split(":", 1)[0]
        reasons[key] = reasons.get(key, 0) + 1
    return reasons


def counts_of(info: JobInfo) -> JobCounts:
    return JobCounts(info.id, info.kind, str(info.project), info.model_version, info.total, info.created,
                     len(info.done), {str(k): v for k, v in info.failed.items()}, len(info.elsewhere),
                     info.cancelled, info.batches, dict(info.usage), info.submitting, info.stopped)


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


class JobStore(Protocol):
    def create(self, info: JobInfo, label_config: str) -> None: ...
    def set_chunks(self, job_id: str, chunks: int, rq_ids: Sequence[str]) -> None: ...
    def mark_done(self, job_id: str, task_ids: Iterable[int]) -> None: ...
    def mark_failed(self, job_id: str, reasons: Mapping[int, str]) -> None: ...
    def mark_elsewhere(self, job_id: str, holders: Mapping[int, str]) -> None: ...
    def get(self, job_id: str) -> JobInfo | None: ...
    def config(self, job_id: str) -> str | None: ...
    def rq_ids(self, job_id: str) -> list[str]: ...
    def recent(self, limit: int = 20) -> list[JobInfo]: ...


class BatchState(Protocol):
    """A batch job's part of the store (RedisBatchState, memstore.MemoryBatchState): what batch/job.py
    keeps so a restarted process resumes without asking anything twice."""

    durable: bool
    job: str

    def set_total(self, total: int) -> None: ...
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
    def add_elsewhere(self, holders: Mapping[Any, str]) -> None: ...
    def add_usage(self, model: str, tokens: Tokens) -> None: ...
    def usage(self) -> dict[str, Tokens]: ...  # model -> token sums
    def cancel(self, on: bool = True) -> None: ...
    def cancelled(self) -> bool: ...
