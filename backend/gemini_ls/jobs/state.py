"""Every job the backend runs and how far it got, readable by every process: the ONE job store.

A job is one project + model_version + the tasks to do, of one kind:

    prelabel  `gemini-ls prelabel` and the remainder of a "Retrieve predictions" click: chunks on
              RQ (or the in-process pool), id `YYYYmmdd-HHMMSS-xxxxxx`
    batch     `gemini-ls prelabel --batch`: one Batch API batch per model, id
              `batch:{project}:{model_version}` (stable, so a rerun resumes it; the claim owner of
              its tasks, jobs/batchhold.py)

Progress is kept as SETS of task ids (done) and a hash task id -> reason (failed), so a chunk
retried after a worker died, or a batch read again after a restart, counts each task once.

Keys (RedisJobStore, under REDIS_PREFIX; one schema for both kinds):

    jobs                 zset  job ids by creation time (what `gemini-ls jobs` and the page list)
    job:{id}             hash  kind, project, model_version, total, created, ls_url, force, chunks,
                               handed_by, cancelled (set by `gemini-ls jobs cancel` / the page)
    job:{id}:config      str   the label config (prelabel)
    job:{id}:done        set   task ids whose prediction Label Studio holds (written by this job)
    job:{id}:failed      hash  task id -> "reason: message"
    job:{id}:elsewhere   hash  task id -> the holder that writes it (a click, another job)
    job:{id}:rq          list  RQ job ids of the chunks (prelabel)
  and a batch job's own data (BatchState):
    job:{id}:batches     hash  Batch API job name -> JSON {state, display_name, requests, source, model}
    job:{id}:submitting  str   display name of a batch being created (set BEFORE batches.create, so a
                               process killed in between finds it by listing)
    job:{id}:meta        hash  task id -> JSON {image name: [width, height]} (one per task sent)
    job:{id}:parts       hash  task id -> JSON {request index: regions} of requests whose batch ended
                               before the batch of the task's other model
    job:{id}:usage       hash  "model|prompt" / output / thoughts / requests token sums

A prelabel job's keys expire after KEEP_SECONDS; a batch job's are kept (its id is reused by every
run for the project and version). The in-memory stores without REDIS_URL are in memstore.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis

from ..gemini.pricing import Tokens
from .records import BATCH, PRELABEL, BatchRecord, JobCounts, JobInfo, batch_job_id

KEEP_SECONDS = 30 * 24 * 3600


def _s(value: Any) -> str:
    """Replies of a bytes client (`job`, `request`) and of a str one (`job-text`) alike."""
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_batch(name: Any, raw: Any) -> BatchRecord:
    data = json.loads(_s(raw))
    return BatchRecord(_s(name), data["state"], data.get("display_name", ""), int(data.get("requests", 0)),
                       data.get("source", "inline"), data.get("model", ""))


def _encode_batch(record: BatchRecord) -> str:
    return json.dumps({"state": record.state, "display_name": record.display_name,
                       "requests": record.requests, "source": record.source, "model": record.model})


_TOKEN_FIELDS = ("prompt", "output", "thoughts", "requests", "cached")


def decode_usage(raw: Mapping[Any, Any]) -> dict[str, Tokens]:
    """{"model|prompt": "12", ...} -> {model: Tokens}"""
    fields: dict[str, dict[str, int]] = {}
    for key, value in raw.items():
        model, _, name = _s(key).rpartition("|")
        if model and name in _TOKEN_FIELDS:
            fields.setdefault(model, {})[name] = int(value)
    return {model: Tokens(**f) for model, f in sorted(fields.items())}


_MARK_DONE = """
for i = 1, #ARGV do
  redis.call('SADD', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return 0
"""


def _info(job_id: str, m: Mapping[str, str], done: Iterable[Any], failed: Mapping[Any, Any],
          elsewhere: Mapping[Any, Any], batches: Mapping[Any, Any], usage: Mapping[Any, Any], submitting: Any,
          stopped: str = "") -> JobInfo:
    return JobInfo(
        id=job_id, project=int(m["project"]), model_version=m["model_version"], total=int(m.get("total", 0)),
        created=float(m.get("created", 0)), ls_url=m.get("ls_url", ""), force=m.get("force") == "1",
        handed_by=m.get("handed_by", ""), chunks=int(m.get("chunks", 0)), done=frozenset(int(_s(d)) for d in done),
        failed={int(_s(k)): _s(v) for k, v in failed.items()}, elsewhere={int(_s(k)): _s(v) for k, v in elsewhere.items()},
        kind=m.get("kind", PRELABEL), cancelled=m.get("cancelled") == "1",
        batches=tuple(decode_batch(n, v) for n, v in sorted(batches.items())), usage=decode_usage(usage),
        submitting=bool(submitting), stopped=stopped,
    )


class RedisJobStore:
    """The one module that talks Redis for jobs; a bytes or a str client (redisconn.py) alike."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._r: Any = client
        self._p = prefix
        self._mark_done = client.register_script(_MARK_DONE)

    def _k(self, job_id: str, part: str = "") -> str:
        return f"{self._p}job:{job_id}" + (f":{part}" if part else "")

    def create(self, info, label_config):
        pipe = self._r.pipeline()
        pipe.hset(self._k(info.id), mapping={
            "kind": info.kind, "project": info.project, "model_version": info.model_version, "total": info.total,
            "created": info.created, "ls_url": info.ls_url, "force": int(info.force), "chunks": info.chunks,
            "handed_by": info.handed_by,
        })
        pipe.set(self._k(info.id, "config"), label_config)
        pipe.zadd(f"{self._p}jobs", {info.id: info.created})
        for part in ("", "config"):
            pipe.expire(self._k(info.id, part), KEEP_SECONDS)
        pipe.execute()

    def batch(self, project: int | str, model_version: str) -> RedisBatchState:
        """A batch job's record, registered (created when new, with its creation time kept when not)."""
        job_id = batch_job_id(project, model_version)
        now = time.time()
        pipe = self._r.pipeline()
        pipe.hset(self._k(job_id), mapping={"kind": BATCH, "project": project, "model_version": model_version})
        pipe.hsetnx(self._k(job_id), "created", now)
        pipe.hsetnx(self._k(job_id), "total", 0)
        pipe.zadd(f"{self._p}jobs", {job_id: now}, nx=True)
        pipe.execute()
        self._adopt_legacy_batch(job_id)
        return self.batch_state(job_id)

    _LEGACY_PARTS = {"batches": "batches", "submitting": "submitting", "meta": "meta", "parts": "parts",
                     "written": "done", "failed": "failed", "usage": "usage"}

    def _adopt_legacy_batch(self, job_id: str) -> None:
        """A batch job kept by a release before the one store (`{prefix}batch:{p}:{v}:*`, a set
        `batch:jobs`) is moved under its record once, so an upgrade in the middle of a batch resumes it."""
        old = f"{self._p}{job_id}:"
        if not self._r.exists(old + "batches") or self._r.exists(self._k(job_id, "batches")):
            return
        for part, new in self._LEGACY_PARTS.items():
            if self._r.exists(old + part):
                self._r.rename(old + part, self._k(job_id, new))
        if self._r.exists(old + "cancelled"):
            self._r.hset(self._k(job_id), "cancelled", 1)
            self._r.delete(old + "cancelled")
        self._r.srem(f"{self._p}batch:jobs", job_id)

    def batch_state(self, job_id: str) -> RedisBatchState:
        """A batch job's data, read or written without registering the job (a page, a cancel)."""
        return RedisBatchState(self, job_id)

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
            if not job_id.startswith("batch:"):
                self._r.expire(self._k(job_id, "done"), KEEP_SECONDS)

    def mark_failed(self, job_id, reasons):
        if reasons:
            done_ids = {int(_s(d)) for d in self._r.smembers(self._k(job_id, "done"))}
            todo = {str(k): v[:500] for k, v in reasons.items() if k not in done_ids}
            if todo:
                self._r.hset(self._k(job_id, "failed"), mapping=todo)
                self._r.expire(self._k(job_id, "failed"), KEEP_SECONDS)

    def mark_elsewhere(self, job_id, holders):
        if holders:
            self._r.hset(self._k(job_id, "elsewhere"), mapping={str(k): v for k, v in holders.items()})
            if not job_id.startswith("batch:"):
                self._r.expire(self._k(job_id, "elsewhere"), KEEP_SECONDS)

    def get(self, job_id):
        pipe = self._r.pipeline(transaction=False)
        for part in ("", "done", "failed", "elsewhere", "batches", "usage"):
            (pipe.smembers if part == "done" else pipe.hgetall)(self._k(job_id, part))
        pipe.get(self._k(job_id, "submitting"))
        pipe.hget(self._k(job_id, "budget"), "stopped")  # jobs/budget.py
        meta, done, failed, elsewhere, batches, usage, submitting, stopped = pipe.execute()
        if not meta:
            return None
        return _info(job_id, {_s(k): _s(v) for k, v in meta.items()}, done, failed, elsewhere, batches, usage, submitting,
                     _s(stopped or ""))

    def counts(self, job_ids: Sequence[str]) -> list[JobCounts]:
        """The jobs as counts (SCARD/HLEN instead of the task sets), in one round trip: what a list
        shows, cheap enough for a page open on 100 jobs. Unknown ids are left out. A batch job's own
        keys are read only for batch ids (`batch:...`)."""
        pipe = self._r.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self._k(job_id))
            pipe.scard(self._k(job_id, "done"))
            pipe.hvals(self._k(job_id, "failed"))
            pipe.hlen(self._k(job_id, "elsewhere"))
            pipe.hgetall(self._k(job_id, "usage"))
            if job_id.startswith(f"{BATCH}:"):
                pipe.hgetall(self._k(job_id, "batches"))
                pipe.exists(self._k(job_id, "submitting"))
            else:
                pipe.hget(self._k(job_id, "budget"), "stopped")  # jobs/budget.py
        replies = iter(pipe.execute() if job_ids else [])
        out = []
        for job_id in job_ids:
            meta, done, failed, elsewhere, usage = (next(replies) for _ in range(5))
            is_batch = job_id.startswith(f"{BATCH}:")
            batches, submitting = (next(replies), next(replies)) if is_batch else ({}, 0)
            stopped = "" if is_batch else _s(next(replies) or "")
            if not meta:
                continue
            m = {_s(k): _s(v) for k, v in meta.items()}
            out.append(JobCounts(
                job_id, m.get("kind", PRELABEL), m.get("project", "?"), m.get("model_version", ""), int(m.get("total", 0)),
                float(m.get("created", 0)), int(done), {str(n): _s(v) for n, v in enumerate(failed)}, int(elsewhere),
                m.get("cancelled") == "1", tuple(decode_batch(n, v) for n, v in sorted(batches.items())),
                decode_usage(usage), bool(submitting), stopped))
        return out

    def ids(self, limit: int | None = None) -> list[str]:
        """Job ids, newest first (every one when `limit` is None)."""
        return [_s(x) for x in self._r.zrevrange(f"{self._p}jobs", 0, -1 if limit is None else limit - 1)]

    def overview(self, limit: int = 50) -> list[JobCounts]:
        return self.counts(self.ids(limit))

    def known(self, job_id: str) -> bool:
        return bool(self._r.exists(self._k(job_id)))

    def config(self, job_id):
        raw = self._r.get(self._k(job_id, "config"))
        return _s(raw) if raw is not None else None

    def rq_ids(self, job_id):
        return [_s(x) for x in self._r.lrange(self._k(job_id, "rq"), 0, -1)]

    def recent(self, limit=20):
        return [j for j in (self.get(i) for i in self.ids(limit)) if j is not None]

    def cancel(self, job_id: str, on: bool = True) -> bool:
        """Mark the job cancelled (`cancelled` of its hash), or not any more (`on=False`: --force
        starts a cancelled batch job again). What runs for it is stopped by jobs/cancel.py. False
        for an unknown job."""
        if not self.known(job_id):
            return False
        if on:
            self._r.hset(self._k(job_id), "cancelled", 1)
        else:
            self._r.hdel(self._k(job_id), "cancelled")
        return True


class RedisBatchState:
    """A batch job's keys of RedisJobStore (its docstring): the job's record plus its batch data."""

    durable = True

    def __init__(self, store: RedisJobStore, job_id: str) -> None:
        self.job = job_id
        self._store = store
        self._r: Any = store._r
        self._k = store._k(job_id) + ":"

    def set_total(self, total: int) -> None:
        self._r.hset(self._store._k(self.job), "total", total)

    def batches(self) -> list[BatchRecord]:
        return [decode_batch(n, v) for n, v in sorted(self._r.hgetall(self._k + "batches").items())]

    def put_batch(self, record: BatchRecord) -> None:
        self._r.hset(self._k + "batches", record.name, _encode_batch(record))

    def submitting(self) -> str | None:
        value = self._r.get(self._k + "submitting")
        return _s(value) if value else None

    def set_submitting(self, display_name: str | None) -> None:
        if display_name is None:
            self._r.delete(self._k + "submitting")
        else:
            self._r.set(self._k + "submitting", display_name)

    def put_meta(self, task_id: Any, metas: dict[str, tuple[int, int]]) -> None:
        self._r.hset(self._k + "meta", str(task_id), json.dumps(metas))

    def meta(self, task_id: Any) -> dict[str, tuple[int, int]] | None:
        raw = self._r.hget(self._k + "meta", str(task_id))
        return {k: (int(v[0]), int(v[1])) for k, v in json.loads(_s(raw)).items()} if raw else None

    def sent(self) -> set[int]:
        """The tasks this job put into a batch (each has its image sizes kept)."""
        return {int(_s(t)) for t in self._r.hkeys(self._k + "meta")}

    def put_parts(self, task_id: Any, parts: dict[int, list[dict]]) -> None:
        if parts:  # one job is run by one process at a time, so read-merge-write is safe
            merged = {**self.parts(task_id), **parts}
            self._r.hset(self._k + "parts", str(task_id), json.dumps({str(i): r for i, r in merged.items()}))

    def parts(self, task_id: Any) -> dict[int, list[dict]]:
        raw = self._r.hget(self._k + "parts", str(task_id))
        return {int(i): r for i, r in json.loads(_s(raw)).items()} if raw else {}

    def parts_of(self, task_ids: Iterable[Any]) -> dict[str, set[int]]:
        """Which request indexes of these tasks already have their regions kept."""
        ids = [str(t) for t in task_ids]
        out: dict[str, set[int]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for tid, raw in zip(chunk, self._r.hmget(self._k + "parts", chunk)):
                if raw:
                    out[tid] = {int(i) for i in json.loads(_s(raw))}
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
        self._store.mark_done(self.job, task_ids)

    def written(self) -> set[str]:
        return {_s(t) for t in self._r.smembers(self._k + "done")}

    def add_failed(self, task_id: Any, reason: str) -> None:
        self._r.hset(self._k + "failed", str(task_id), reason)

    def clear_failed(self, task_ids: Iterable[Any]) -> None:
        ids = [str(t) for t in task_ids]
        if ids:
            self._r.hdel(self._k + "failed", *ids)

    def failed(self) -> dict[str, str]:
        return {_s(k): _s(v) for k, v in self._r.hgetall(self._k + "failed").items()}

    def add_elsewhere(self, holders: Mapping[Any, str]) -> None:
        self._store.mark_elsewhere(self.job, holders)

    def add_usage(self, model: str, tokens: Tokens) -> None:
        pipe = self._r.pipeline()
        for name in _TOKEN_FIELDS:
            pipe.hincrby(self._k + "usage", f"{model}|{name}", getattr(tokens, name))
        pipe.execute()

    def usage(self) -> dict[str, Tokens]:
        return decode_usage(self._r.hgetall(self._k + "usage"))

    def cancel(self, on: bool = True) -> None:
        self._store.cancel(self.job, on)

    def cancelled(self) -> bool:
        return _s(self._r.hget(self._store._k(self.job), "cancelled") or "") == "1"


def dumps(info: JobInfo) -> str:
    return json.dumps(info.summary(), sort_keys=True)
