"""Who may write a task's prediction of one model_version to Label Studio: exactly one owner.

A claim is a short key per (project, model_version, task): whoever sets it first (SET NX) computes
and writes that task; everybody else leaves it alone. A claim has a lease (TTL) that its owner
renews while it works, so a SIGKILLed worker's claims lapse and RQ's retry of its job can take
them. Finished claims are turned into a terminal mark:

    delivered   /predict answered the task with a result (Label Studio stores it itself)
    written     a background job wrote it through Label Studio's API

A claim alone cannot cover a worker that wrote to Label Studio and died before marking: the writer
also asks Label Studio which tasks already hold the version right before it writes (labelstudio/predictions.py).
A mark is a hint, never the truth: Label Studio only asks for tasks it lacks, and may lack a
`delivered` one (its SQLite "database is locked" retry re-runs a /predict whose save failed) or a
`written` one (a user deleted the prediction), so a marked task can be `retake`n after checking.

`RedisClaims` is shared by every process on one Redis; `MemoryClaims` is the embedded default
without REDIS_URL (one process). Both speak `Claims`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import redis

DELIVERED = "delivered"
WRITTEN = "written"
TERMINAL = (DELIVERED, WRITTEN)
WRITTEN_SECONDS = 7 * 24 * 3600  # a written mark outlives any reasonable re-run of the same job
DELIVERED_SECONDS = 600  # Label Studio stores a /predict answer within moments


def scope_of(project: int | str, model_version: str) -> str:
    return f"{project}:{model_version}"


def queued_owner(job_id: str) -> str:
    """Who holds a job's tasks while they wait on the queue (a click's remainder): whichever attempt
    of the job runs takes them over (`transfer`); nobody else predicts them meanwhile."""
    return f"job:{job_id}:queued"


class Claims(Protocol):
    def acquire(self, scope: str, task_ids: Sequence[int], owner: str, ttl: float) -> dict[int, str | None]:
        """Try to claim every task; returns task id -> None when acquired, else the current holder."""
        ...

    def renew(self, scope: str, task_ids: Iterable[int], owner: str, ttl: float) -> set[int]:
        """Extend the lease of the tasks still held by `owner`; returns those (lost ones are missing)."""
        ...

    def release(self, scope: str, task_ids: Iterable[int], owner: str) -> None:
        """Give up the tasks still held by `owner` (failed: somebody may try again)."""
        ...

    def finish(self, scope: str, task_ids: Iterable[int], mark: str, ttl: float) -> None:
        """Set the terminal mark (delivered / written), whoever held the claim."""
        ...

    def transfer(self, scope: str, task_ids: Iterable[int], owner: str, new_owner: str, ttl: float) -> set[int]:
        """Hand the tasks still held by `owner` to `new_owner` (a click to its job); returns those."""
        ...

    def retake(self, scope: str, task_ids: Iterable[int], owner: str, ttl: float) -> set[int]:
        """Claim the tasks that are free or only carry a terminal mark; returns those taken."""
        ...

    def holders(self, scope: str, task_ids: Sequence[int]) -> dict[int, str | None]:
        ...

    def forget(self, scope: str, task_ids: Iterable[int]) -> None:
        """Drop claims and marks (prelabel --force)."""
        ...


class MemoryClaims:
    """One process's claims (no REDIS_URL)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[tuple[str, int], tuple[str, float]] = {}

    def _get(self, key: tuple[str, int]) -> str | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._items[key]
            return None
        return entry[0]

    def acquire(self, scope, task_ids, owner, ttl):
        out: dict[int, str | None] = {}
        with self._lock:
            for tid in task_ids:
                held = self._get((scope, tid))
                if held is None:
                    self._items[(scope, tid)] = (owner, self._clock() + ttl)
                out[tid] = held
        return out

    def renew(self, scope, task_ids, owner, ttl):
        return self.transfer(scope, task_ids, owner, owner, ttl)  # to itself: a longer lease

    def release(self, scope, task_ids, owner):
        with self._lock:
            for tid in task_ids:
                if self._get((scope, tid)) == owner:
                    del self._items[(scope, tid)]

    def finish(self, scope, task_ids, mark, ttl):
        with self._lock:
            for tid in task_ids:
                self._items[(scope, tid)] = (mark, self._clock() + ttl)

    def transfer(self, scope, task_ids, owner, new_owner, ttl):
        moved = set()
        with self._lock:
            for tid in task_ids:
                if self._get((scope, tid)) == owner:
                    self._items[(scope, tid)] = (new_owner, self._clock() + ttl)
                    moved.add(tid)
        return moved

    def retake(self, scope, task_ids, owner, ttl):
        taken = set()
        with self._lock:
            for tid in task_ids:
                if self._get((scope, tid)) in (None, *TERMINAL):
                    self._items[(scope, tid)] = (owner, self._clock() + ttl)
                    taken.add(tid)
        return taken

    def holders(self, scope, task_ids):
        with self._lock:
            return {tid: self._get((scope, tid)) for tid in task_ids}

    def forget(self, scope, task_ids):
        with self._lock:
            for tid in task_ids:
                self._items.pop((scope, tid), None)


# KEYS = claim keys, ARGV[1] = owner, ARGV[2] = ttl ms: compare-and-extend / compare-and-delete
_RENEW = """
local kept = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    table.insert(kept, i)
  end
end
return kept
"""
_RETAKE = """
local taken = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if (not v) or v == 'delivered' or v == 'written' then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    table.insert(taken, i)
  end
end
return taken
"""
# ARGV[1] = owner, ARGV[2] = new owner, ARGV[3] = ttl ms: compare-and-set
_TRANSFER = """
local moved = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
    table.insert(moved, i)
  end
end
return moved
"""
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""


class RedisClaims:
    """Claims shared by every server worker, replica and job worker on one Redis.

    Unlike the Files API cache, claims are not optional: an unreachable Redis raises, and the job
    layer treats the tasks as not claimed (nothing is written twice, the job is retried later).
    """

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._r: Any = client
        self._prefix = prefix
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._retake = client.register_script(_RETAKE)
        self._transfer = client.register_script(_TRANSFER)

    def _key(self, scope: str, tid: int) -> str:
        return f"{self._prefix}claim:{scope}:{tid}"

    def acquire(self, scope, task_ids, owner, ttl):
        ids = list(task_ids)
        if not ids:
            return {}
        ms = max(1, int(ttl * 1000))
        pipe = self._r.pipeline(transaction=False)
        for tid in ids:
            pipe.set(self._key(scope, tid), owner, nx=True, px=ms)
            pipe.get(self._key(scope, tid))
        replies = pipe.execute()
        out: dict[int, str | None] = {}
        for i, tid in enumerate(ids):
            won, holder = replies[2 * i], replies[2 * i + 1]
            out[tid] = None if won else (holder.decode() if isinstance(holder, bytes) else holder)
        return out

    def renew(self, scope, task_ids, owner, ttl):
        ids = list(task_ids)
        if not ids:
            return set()
        kept = self._renew(keys=[self._key(scope, t) for t in ids], args=[owner, max(1, int(ttl * 1000))])
        return {ids[int(i) - 1] for i in kept}

    def retake(self, scope, task_ids, owner, ttl):
        ids = list(task_ids)
        if not ids:
            return set()
        taken = self._retake(keys=[self._key(scope, t) for t in ids], args=[owner, max(1, int(ttl * 1000))])
        return {ids[int(i) - 1] for i in taken}

    def transfer(self, scope, task_ids, owner, new_owner, ttl):
        ids = list(task_ids)
        if not ids:
            return set()
        moved = self._transfer(keys=[self._key(scope, t) for t in ids], args=[owner, new_owner, max(1, int(ttl * 1000))])
        return {ids[int(i) - 1] for i in moved}

    def release(self, scope, task_ids, owner):
        ids = list(task_ids)
        if ids:
            self._release(keys=[self._key(scope, t) for t in ids], args=[owner])

    def finish(self, scope, task_ids, mark, ttl):
        pipe = self._r.pipeline(transaction=False)
        for tid in task_ids:
            pipe.set(self._key(scope, tid), mark, px=max(1, int(ttl * 1000)))
        pipe.execute()

    def holders(self, scope, task_ids):
        ids = list(task_ids)
        if not ids:
            return {}
        values = self._r.mget([self._key(scope, t) for t in ids])
        return {tid: (v.decode() if isinstance(v, bytes) else v) for tid, v in zip(ids, values)}

    def forget(self, scope, task_ids):
        keys = [self._key(scope, t) for t in task_ids]
        if keys:
            self._r.delete(*keys)
