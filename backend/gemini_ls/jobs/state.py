"""What a pre-labelling job is and how far it got, readable by every process (reusable by any
job kind: `gemini-ls prelabel`, and later the Batch API).

A job is one project + model_version + label config + the task ids to do. It is split into
chunks, each one RQ job (or one unit of the in-process pool). Progress is kept as SETS of task ids
(done) and a hash task id -> reason (failed), so a chunk retried after a worker died counts each
task once.

Keys (RedisJobStore, under REDIS_PREFIX): `job:{id}` hash (fields of JobInfo), `job:{id}:config`
(the label config), `job:{id}:done` set, `job:{id}:failed` hash, `job:{id}:elsewhere` hash (tasks
another holder writes: a click or another job), `job:{id}:rq` list of RQ job ids, `jobs` zset of
ids by creation time.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import redis

KEEP_SECONDS = 30 * 24 * 3600


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

    @property
    def finished(self) -> bool:
        return len(self.done | set(self.failed) | set(self.elsewhere)) >= self.total

    @property
    def state(self) -> str:
        if not self.finished:
            return "running"
        return "failed" if self.failed else "finished"

    def summary(self) -> dict:
        reasons: dict[str, int] = {}
        for why in self.failed.values():
            key = why.split(":", 1)[0]
            reasons[key] = reasons.get(key, 0) + 1
        return {
            "id": self.id, "project": self.project, "model_version": self.model_version, "state": self.state,
            "total": self.total, "done": len(self.done), "failed": len(self.failed), "elsewhere": len(self.elsewhere),
            "failed_by_reason": reasons, "created": self.created,
        }


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


_MARK_DONE = """
for i = 1, #ARGV do
  redis.call('SADD', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return 0
"""


class RedisJobStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._r: Any = client
        self._p = prefix
        self._mark_done = client.register_script(_MARK_DONE)

    def _k(self, job_id: str, part: str = "") -> str:
        return f"{self._p}job:{job_id}" + (f":{part}" if part else "")

    def create(self, info, label_config):
        pipe = self._r.pipeline()
        pipe.hset(self._k(info.id), mapping={
            "project": info.project, "model_version": info.model_version, "total": info.total,
            "created": info.created, "ls_url": info.ls_url, "force": int(info.force), "chunks": info.chunks,
            "handed_by": info.handed_by,
        })
        pipe.set(self._k(info.id, "config"), label_config)
        pipe.zadd(f"{self._p}jobs", {info.id: info.created})
        for part in ("", "config"):
            pipe.expire(self._k(info.id, part), KEEP_SECONDS)
        pipe.execute()

    def set_chunks(self, job_id, chunks, rq_ids):
        pipe = self._r.pipeline()
        pipe.hset(self._k(job_id), "chunks", chunks)
        if rq_ids:
            pipe.rpush(self._k(job_id, "rq"), *rq_ids)
            pipe.expire(self._k(job_id, "rq"), KEEP_SECONDS)
        pipe.execute()

    def mark_done(self, job_id, task_ids):
        ids = [str(t) for t in task_ids]
        if ids:
            self._mark_done(keys=[self._k(job_id, "done"), self._k(job_id, "failed")], args=ids)
            self._r.expire(self._k(job_id, "done"), KEEP_SECONDS)

    def mark_failed(self, job_id, reasons):
        if reasons:
            done = self._r.smembers(self._k(job_id, "done"))
            done_ids = {int(d) for d in done}
            todo = {str(k): v[:500] for k, v in reasons.items() if k not in done_ids}
            if todo:
                self._r.hset(self._k(job_id, "failed"), mapping=todo)
                self._r.expire(self._k(job_id, "failed"), KEEP_SECONDS)

    def mark_elsewhere(self, job_id, holders):
        if holders:
            self._r.hset(self._k(job_id, "elsewhere"), mapping={str(k): v for k, v in holders.items()})
            self._r.expire(self._k(job_id, "elsewhere"), KEEP_SECONDS)

    def get(self, job_id):
        pipe = self._r.pipeline(transaction=False)
        pipe.hgetall(self._k(job_id))
        pipe.smembers(self._k(job_id, "done"))
        pipe.hgetall(self._k(job_id, "failed"))
        pipe.hgetall(self._k(job_id, "elsewhere"))
        meta, done, failed, elsewhere = pipe.execute()
        if not meta:
            return None
        m = {k.decode(): v.decode() for k, v in meta.items()}
        return JobInfo(
            id=job_id, project=int(m["project"]), model_version=m["model_version"], total=int(m["total"]),
            created=float(m["created"]), ls_url=m.get("ls_url", ""), force=m.get("force") == "1",
            handed_by=m.get("handed_by", ""), chunks=int(m.get("chunks", 0)), done=frozenset(int(d) for d in done),
            failed={int(k): v.decode() for k, v in failed.items()},
            elsewhere={int(k): v.decode() for k, v in elsewhere.items()},
        )

    def config(self, job_id):
        raw = self._r.get(self._k(job_id, "config"))
        return raw.decode() if raw is not None else None

    def rq_ids(self, job_id):
        return [x.decode() for x in self._r.lrange(self._k(job_id, "rq"), 0, -1)]

    def recent(self, limit=20):
        ids = [x.decode() for x in self._r.zrevrange(f"{self._p}jobs", 0, limit - 1)]
        return [j for j in (self.get(i) for i in ids) if j is not None]

    def cancel(self, job_id: str) -> bool:
        """Mark the job cancelled (field `cancelled` of its hash; its queued chunks are cancelled
        by RQJobQueue.cancel). False for an unknown job."""
        if not self._r.exists(self._k(job_id)):
            return False
        self._r.hset(self._k(job_id), "cancelled", 1)
        return True


def dumps(info: JobInfo) -> str:
    return json.dumps(info.summary(), sort_keys=True)
