"""Without REDIS_URL, the remainder of a "Retrieve predictions" click is finished and written by
this process (oneclick.py, latewriter.py); here it becomes one job of this process's job store
(memstore.process_store), so the page and GET /api/jobs list this process's jobs (docs/page.md).
With REDIS_URL the remainder is a job on the RQ queue (oneclick.Handoff) and this is not used.

A click's late tasks may finish (or fail) before the click knows which tasks are late, so what
happens to a task is kept per click (its claim owner) from `begin` until `open` makes the job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from .records import JobInfo, JobStore, new_job_id


class Remainders:
    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._early: dict[str, list[tuple[int, str | None]]] = {}  # owner -> (task, failure or None) before `open`
        self._open: dict[str, tuple[str, int]] = {}  # owner -> (job id, total) while the job runs

    def begin(self, owner: str) -> None:
        with self._lock:
            self._early[owner] = []

    def open(self, owner: str, project: int, model_version: str, task_ids: Sequence[int], label_config: str = "") -> str | None:
        """The job of the click's late tasks (None when none is late: nothing goes on)."""
        if not task_ids:
            with self._lock:
                self._early.pop(owner, None)
            return None
        info = JobInfo(id=new_job_id(), project=project, model_version=model_version, total=len(task_ids),
                       created=time.time(), handed_by=owner)
        self.store.create(info, label_config)
        with self._lock:
            early = self._early.pop(owner, [])
            self._open[owner] = (info.id, info.total)
        for tid, failure in early:
            self._mark(owner, info.id, info.total, tid, failure)
        return info.id

    def record(self, owner: str, task_id: int, failure: str | None) -> None:
        """A late task of the click `owner` is written (`failure` None) or failed (why)."""
        with self._lock:
            if owner in self._early:
                self._early[owner].append((task_id, failure))
                return
            job = self._open.get(owner)
        if job is not None:
            self._mark(owner, job[0], job[1], task_id, failure)

    def _mark(self, owner: str, job_id: str, total: int, task_id: int, failure: str | None) -> None:
        if failure is None:
            self.store.mark_done(job_id, [task_id])
        else:
            self.store.mark_failed(job_id, {task_id: failure})
        info = self.store.get(job_id)
        if info is not None and len(info.done) + len(info.failed) >= total:
            with self._lock:
                self._open.pop(owner, None)
