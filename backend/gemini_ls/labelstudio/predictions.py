"""Predictions read from and written to Label Studio, in chunks, retried, never twice.

* `POST /api/projects/{id}/import/predictions` takes a list of `{"task", "result", "score",
  "model_version"}` and bulk-creates them (Label Studio 1.23 checks the task ids belong to the
  project and answers 201 `{"created": n}`);
* `GET /api/predictions?task=ID` lists a task's predictions (a list; a paginated `{"results"}` is
  read too).

`PredictionWriter.write()` sends chunks; before EVERY attempt of a chunk it asks Label Studio which
of its tasks already hold the version (tasks.py `tasks_holding`) and drops those: a POST that timed
out may still have landed, and a process killed after writing leaves no other trace. 5xx, 429,
timeouts and connection errors are retried with the backoff of retry.py; a 400 on a chunk is
retried task by task, so one prediction Label Studio refuses never costs the others. Nothing is
lost silently: every task ends in `written`, `already` or `failed` (with the reason) of the
returned `WriteReport`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import LabelStudioApiError
from .retry import BACKOFF_BASE, BACKOFF_CAP, WRITE_ATTEMPTS, backoff
from .tasks import chunks

if TYPE_CHECKING:
    from .client import LabelStudioApi

log = logging.getLogger("gemini_ls.labelstudio")


def predictions_of(api: LabelStudioApi, task_id: int) -> list[dict]:
    body = api.request("GET", "/api/predictions", params={"task": int(task_id)})
    if isinstance(body, Mapping):
        body = body.get("results")
    return [p for p in body or () if isinstance(p, dict)] if isinstance(body, list) else []


def import_predictions(api: LabelStudioApi, project: int, items: Sequence[Mapping[str, Any]]) -> int:
    """Bulk-create predictions; the number Label Studio says it created."""
    body = api.request("POST", f"/api/projects/{int(project)}/import/predictions", json=list(items))
    return int((body or {}).get("created", len(items)))


@dataclass(frozen=True)
class PredictionRecord:
    task_id: int
    result: tuple[dict, ...]
    model_version: str
    score: float | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"task": self.task_id, "result": list(self.result), "model_version": self.model_version}
        if self.score is not None:
            body["score"] = self.score
        return body

    @classmethod
    def from_payload(cls, body: Mapping[str, Any]) -> PredictionRecord:
        """The inverse of `payload` (a /predict result entry with its "task")."""
        score = body.get("score")
        return cls(int(body["task"]), tuple(body.get("result") or ()), str(body["model_version"]),
                   float(score) if score is not None else None)


@dataclass(frozen=True)
class WriteReport:
    written: tuple[int, ...] = ()
    already: tuple[int, ...] = ()  # held the version already: left alone
    failed: Mapping[int, str] = field(default_factory=dict)  # task id -> why it could not be written

    def merge(self, other: WriteReport) -> WriteReport:
        return WriteReport(self.written + other.written, self.already + other.already, {**self.failed, **other.failed})


@dataclass
class PredictionWriter:
    """Writes `PredictionRecord`s of one project; see the module docstring for the guarantees."""

    api: LabelStudioApi
    chunk: int = 100
    attempts: int = WRITE_ATTEMPTS
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def write(self, project: int, records: Iterable[PredictionRecord], checked: Iterable[int] = ()) -> WriteReport:
        """`checked`: tasks the caller already found lacking the version in Label Studio and has held
        the claim of ever since (so nobody else can have written them): their first attempt skips
        the check (two Label Studio calls per chunk). A retry always checks (a POST that timed out
        may have landed)."""
        report = WriteReport()
        fresh = set(checked)
        for chunk in chunks(list(records), self.chunk):
            report = report.merge(self._write_chunk(project, list(chunk), fresh))
        return report

    def _write_chunk(self, project: int, records: list[PredictionRecord], checked: Set[int] = frozenset()) -> WriteReport:
        pending = {r.task_id: r for r in records}
        versions = {r.model_version for r in records}
        already: list[int] = []
        written: list[int] = []
        last_error = "not attempted"
        for attempt in range(self.attempts):
            try:
                for version in versions:
                    mine = [t for t, r in pending.items() if r.model_version == version and (attempt or t not in checked)]
                    held = self.api.tasks_holding(project, version, mine) if mine else set()
                    for tid in held:
                        pending.pop(tid, None)
                        already.append(tid)
                if not pending:
                    return WriteReport((*written,), (*already,), {})
                self.api.import_predictions(project, [r.payload() for r in pending.values()])
                written.extend(pending)
                return WriteReport((*written,), (*already,), {})
            except LabelStudioApiError as exc:
                last_error = str(exc)
                if exc.status == 400 and len(pending) > 1:
                    # one prediction Label Studio refuses must not cost the others
                    sub = WriteReport()
                    for record in list(pending.values()):
                        sub = sub.merge(self._write_chunk(project, [record]))
                    return WriteReport((*written, *sub.written), (*already, *sub.already), dict(sub.failed))
                if not exc.transient:
                    break
                if attempt + 1 < self.attempts:
                    delay = backoff(attempt, base=self.backoff_base, cap=self.backoff_cap, rand=self.rand)
                    log.warning("write-back of %d predictions to project %s failed (%s); retry %d in %.1f s",
                                len(pending), project, exc, attempt + 1, delay)
                    self.sleep(delay)
        log.error("write-back to project %s gave up on %d tasks: %s", project, len(pending), last_error)
        return WriteReport((*written,), (*already,), {t: last_error for t in pending})
