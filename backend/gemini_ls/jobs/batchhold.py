"""A Batch API job's hold on its tasks: the claims of claims.py, as an RQ chunk (work.py) takes them.

A task is claimed for (project, model_version) when it is put into a batch, under the owner
`batch:{project}:{model_version}` (the batch job's id: stable, so a restarted `prelabel --batch`
finds its own claims, and a click or a `gemini-ls prelabel` chunk that meets one knows it is a batch
job's). The lease is as long as the Batch API lets a batch live (it EXPIRES after 48 h), because a
batch runs on without any process of ours (`--no-wait`); the poller renews it while it waits.

On write, exactly as a chunk: the claims still held are renewed, lapsed ones taken again when free,
the rest (somebody else holds them now) left alone; Label Studio is asked which tasks hold the
version right before the POST (PredictionWriter: versions read at write time, not when the job
started, hours earlier); written and already-there tasks turn `written`, failed ones are released.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..labelstudio import PredictionRecord, PredictionWriter, WriteReport
from .claims import WRITTEN, WRITTEN_SECONDS, Claims, scope_of
from .records import batch_job_id

BATCH_LEASE_SECONDS = 49 * 3600.0  # a Batch API batch ends (EXPIRED at the latest) within 48 h
BATCH_OWNER_PREFIX = "batch:"


def batch_owner(project: int | str, model_version: str) -> str:
    """The claim owner of a batch job: its job id (records.py)."""
    return batch_job_id(project, model_version)


def is_batch_owner(holder: str | None) -> bool:
    return bool(holder) and str(holder).startswith(BATCH_OWNER_PREFIX)


@dataclass(frozen=True)
class Taken:
    mine: tuple[int, ...]
    elsewhere: dict[int, str] = field(default_factory=dict)  # task id -> its holder


@dataclass(frozen=True)
class Written:
    report: WriteReport
    elsewhere: dict[int, str] = field(default_factory=dict)  # not written: another holder has the task now


class BatchHold:
    def __init__(self, claims: Claims, project: int, model_version: str, writer: PredictionWriter,
                 ttl: float = BATCH_LEASE_SECONDS) -> None:
        self.claims = claims
        self.project = project
        self.version = model_version
        self.scope = scope_of(project, model_version)
        self.owner = batch_owner(project, model_version)
        self.writer = writer
        self.ttl = ttl

    def take(self, task_ids: Sequence[int]) -> Taken:
        """Claim the tasks going into a batch. Ours already (an earlier run of this job): renewed.
        `written` marks are taken back (the caller found the task lacking the version in Label
        Studio; the write checks again); `delivered` ones are left alone (Label Studio is storing a
        /predict answer for the task right now), as every other holder."""
        held = self.claims.acquire(self.scope, list(task_ids), self.owner, self.ttl)
        own = [t for t, h in held.items() if h == self.owner]
        if own:
            self.claims.renew(self.scope, own, self.owner, self.ttl)
        marked = [t for t, h in held.items() if h == WRITTEN]
        for tid in self.claims.retake(self.scope, marked, self.owner, self.ttl) if marked else ():
            held[tid] = None
        mine = tuple(t for t in task_ids if held[t] is None or held[t] == self.owner)
        return Taken(mine, {t: str(h) for t, h in held.items() if h is not None and h != self.owner})

    def renew(self, task_ids: Iterable[int]) -> set[int]:
        return self.claims.renew(self.scope, list(task_ids), self.owner, self.ttl)

    def release(self, task_ids: Iterable[int]) -> None:
        ids = list(task_ids)
        if ids:
            self.claims.release(self.scope, ids, self.owner)

    def write(self, records: Sequence[PredictionRecord]) -> Written:
        """Write what is still this job's (see the module docstring); the rest is `elsewhere`."""
        ids = [r.task_id for r in records]
        kept = self.renew(ids)
        lost = [t for t in ids if t not in kept]
        elsewhere: dict[int, str] = {}
        if lost:  # the lease lapsed (a batch resumed after its claims ran out): free ones are ours again
            for tid, holder in self.claims.acquire(self.scope, lost, self.owner, self.ttl).items():
                if holder is None or holder == WRITTEN:  # `written`: the writer's check decides
                    kept.add(tid)
                else:
                    elsewhere[tid] = holder
            self.claims.retake(self.scope, [t for t in lost if t in kept], self.owner, self.ttl)
        report = self.writer.write(self.project, [r for r in records if r.task_id in kept])  # checks Label Studio first
        done = [*report.written, *report.already]
        if done:
            self.claims.finish(self.scope, done, WRITTEN, WRITTEN_SECONDS)
        self.release(report.failed)
        return Written(report, elsewhere)
