"""A job's spend and its cap (`gemini-ls prelabel --max-cost USD`): what each chunk cost, and the
check that stops the job before a chunk would pass the cap.

Before a chunk predicts, it reserves its estimated cost (tasks x the job's cost per task: the one
measured so far once a chunk has settled, else `--estimate`'s); the reservation is refused when
spent + reserved + this chunk > cap, and the job is marked stopped with the reason. Its tasks are
left untouched (neither done nor failed): the same command with a higher cap makes a new job that
skips every task already holding the version, so nothing is lost and nothing is written twice.
After the chunk, its measured usage replaces its reservation in one step (`settle`), so a check
never sees a chunk twice nor misses it. Workers on several machines share this through Redis.

Keys (under REDIS_PREFIX, beside jobs/state.py's): `job:{id}:budget` hash (cap, per_task,
reserved, spent, settled_tasks, stopped), `job:{id}:usage` hash ("{model}|prompt|output|thoughts|
requests" -> count): the job's tokens by model, also read as the version's history by --estimate.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from ..gemini.pricing import Tokens, cost_by_model
from .state import KEEP_SECONDS, decode_usage  # the job's usage hash, one format for every kind

FIELDS = ("prompt", "output", "thoughts", "requests", "cached")  # jobs/state.py reads them back (decode_usage)


@dataclass(frozen=True)
class BudgetState:
    cap: float | None  # USD; None: no cap
    per_task: float  # estimated USD per task (--estimate)
    reserved: float
    spent: float
    settled_tasks: int
    stopped: str  # why the job stopped ("" while it may go on)


def chunk_cost(state: BudgetState, tasks: int) -> float:
    """What a chunk of `tasks` is expected to cost: the job's measured cost per task once known
    (it follows the real answers), else the estimate's."""
    per_task = state.spent / state.settled_tasks if state.settled_tasks > 0 and state.spent > 0 else state.per_task
    return per_task * tasks


def refusal(state: BudgetState, cost: float) -> str | None:
    """Why a chunk costing `cost` may not start (None: it may)."""
    if state.stopped:
        return state.stopped
    if state.cap is None or state.spent + state.reserved + cost <= state.cap:
        return None
    return (f"max cost: spent ${state.spent:.4f} + running ${state.reserved:.4f} + next chunk ~${cost:.4f} would pass "
            f"--max-cost ${state.cap:.4f}; run the same command with a higher --max-cost to go on")


def usage_fields(usage: Mapping[str, Tokens]) -> dict[str, int]:
    out: dict[str, int] = {}
    for model, t in usage.items():
        for name, value in zip(FIELDS, (t.prompt, t.output, t.thoughts, t.requests, t.cached), strict=True):
            if value:
                out[f"{model}|{name}"] = value
    return out


class Budget(Protocol):
    def set_cap(self, job_id: str, cap: float | None, per_task: float) -> None: ...
    def reserve(self, job_id: str, tasks: int) -> tuple[float, str | None]: ...
    def settle(self, job_id: str, reserved: float, usage: Mapping[str, Tokens], tasks: int) -> None: ...
    def state(self, job_id: str) -> BudgetState: ...
    def usage(self, job_id: str) -> dict[str, Tokens]: ...


class MemoryBudget:
    """This process's jobs (no REDIS_URL)."""

    def __init__(self, prices: Mapping[str, tuple[float, float]] | None = None) -> None:
        self._lock = threading.Lock()
        self._prices = prices
        self._state: dict[str, BudgetState] = {}
        self._usage: dict[str, dict[str, Tokens]] = {}

    def _get(self, job_id: str) -> BudgetState:
        return self._state.get(job_id, BudgetState(None, 0.0, 0.0, 0.0, 0, ""))

    def set_cap(self, job_id, cap, per_task):
        with self._lock:
            self._state[job_id] = BudgetState(cap, per_task, 0.0, 0.0, 0, "")

    def reserve(self, job_id, tasks):
        with self._lock:
            state = self._get(job_id)
            cost = chunk_cost(state, tasks)
            why = refusal(state, cost)
            if why is not None:
                self._state[job_id] = BudgetState(state.cap, state.per_task, state.reserved, state.spent,
                                                  state.settled_tasks, why)
                return 0.0, why
            self._state[job_id] = BudgetState(state.cap, state.per_task, state.reserved + cost, state.spent,
                                              state.settled_tasks, "")
            return cost, None

    def settle(self, job_id, reserved, usage, tasks):
        spent = cost_by_model(dict(usage), self._prices).sync_usd or 0.0
        with self._lock:
            s = self._get(job_id)
            self._state[job_id] = BudgetState(s.cap, s.per_task, max(0.0, s.reserved - reserved), s.spent + spent,
                                              s.settled_tasks + tasks, s.stopped)
            mine = self._usage.setdefault(job_id, {})
            for model, t in usage.items():
                mine[model] = mine.get(model, Tokens()) + t

    def state(self, job_id):
        with self._lock:
            return self._get(job_id)

    def usage(self, job_id):
        with self._lock:
            return dict(self._usage.get(job_id, {}))


# KEYS[1] budget hash; ARGV: amount, reason-if-refused. Refuses when stopped or spent+reserved+amount > cap.
_RESERVE = """
local b = KEYS[1]
if redis.call('HGET', b, 'stopped') and redis.call('HGET', b, 'stopped') ~= '' then return redis.call('HGET', b, 'stopped') end
local cap = redis.call('HGET', b, 'cap')
local amount = tonumber(ARGV[1])
if cap and cap ~= '' then
  local spent = tonumber(redis.call('HGET', b, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', b, 'reserved') or '0')
  if spent + reserved + amount > tonumber(cap) then
    redis.call('HSET', b, 'stopped', ARGV[2])
    return ARGV[2]
  end
end
redis.call('HINCRBYFLOAT', b, 'reserved', amount)
redis.call('EXPIRE', b, ARGV[3])
return ''
"""


class RedisBudget:
    def __init__(self, client: redis.Redis, prefix: str, prices: Mapping[str, tuple[float, float]] | None = None) -> None:
        self._r: Any = client
        self._p = prefix
        self._prices = prices
        self._reserve = client.register_script(_RESERVE)

    def _k(self, job_id: str, part: str) -> str:
        return f"{self._p}job:{job_id}:{part}"

    def set_cap(self, job_id, cap, per_task):
        key = self._k(job_id, "budget")
        pipe = self._r.pipeline()
        pipe.hset(key, mapping={"cap": "" if cap is None else repr(cap), "per_task": repr(per_task), "stopped": ""})
        pipe.expire(key, KEEP_SECONDS)
        pipe.execute()

    def reserve(self, job_id, tasks):
        state = self.state(job_id)
        cost = chunk_cost(state, tasks)
        # the reason is worded with the figures read just now; the script decides on the current ones
        why = refusal(BudgetState(state.cap, state.per_task, state.reserved, state.spent, state.settled_tasks, ""),
                      cost) or "max cost: the cap was reached"
        answer = self._reserve(keys=[self._k(job_id, "budget")], args=[repr(cost), why, KEEP_SECONDS])
        text = answer.decode() if isinstance(answer, bytes) else str(answer or "")
        return (0.0, text) if text else (cost, None)

    def settle(self, job_id, reserved, usage, tasks):
        spent = cost_by_model(dict(usage), self._prices).sync_usd or 0.0
        pipe = self._r.pipeline()  # MULTI: a reader sees the reservation or the spend, never both or neither
        b = self._k(job_id, "budget")
        pipe.hincrbyfloat(b, "reserved", -reserved)
        pipe.hincrbyfloat(b, "spent", spent)
        pipe.hincrby(b, "settled_tasks", tasks)
        for field, n in usage_fields(usage).items():
            pipe.hincrby(self._k(job_id, "usage"), field, n)
        pipe.expire(b, KEEP_SECONDS)
        pipe.expire(self._k(job_id, "usage"), KEEP_SECONDS)
        pipe.execute()

    def state(self, job_id):
        m = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in self._r.hgetall(self._k(job_id, "budget")).items()}
        return BudgetState(cap=float(m["cap"]) if m.get("cap") else None, per_task=float(m.get("per_task") or 0),
                           reserved=float(m.get("reserved") or 0), spent=float(m.get("spent") or 0),
                           settled_tasks=int(m.get("settled_tasks") or 0), stopped=m.get("stopped", ""))

    def usage(self, job_id):
        return decode_usage(self._r.hgetall(self._k(job_id, "usage")))
