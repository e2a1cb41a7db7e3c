"""Finished /predict outcomes in Redis, shared by every gunicorn worker and replica.

The SelectionRunner keeps a finished task for a while (a late one until asked for, a delivered one past
Label Studio's 100 s wait): with REDIS_URL that store lives here, so a repeated "Retrieve
predictions" that lands on another worker or replica is served, never recomputed. Keys:
`{prefix}outcome:{model_version}:{task key}` (JSON of the TaskOutcome, with a TTL). Redis errors are
misses: a lost entry costs a recomputation, never a wrong answer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import cast

import redis

from .. import redisconn
from ..predict import TaskOutcome
from ..redisconn import REQUEST
from ..settings import Settings

log = logging.getLogger("gemini_ls.jobs")


class RedisOutcomeStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._r = client
        self._prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self._prefix}outcome:{key}"

    def get(self, key: str) -> TaskOutcome | None:
        try:
            raw = cast("bytes | None", self._r.get(self._key(key)))  # redis-py types sync and async alike
        except (redis.RedisError, OSError) as exc:
            log.warning("outcome store: Redis error on get (%s); computing the task", exc)
            return None
        if raw is None:
            return None
        data = json.loads(raw)
        data["result"] = tuple(data["result"]) if data.get("result") is not None else None
        return TaskOutcome(**data)

    def put(self, key: str, outcome: TaskOutcome, seconds: float) -> None:
        try:
            self._r.set(self._key(key), json.dumps(asdict(outcome), default=str), px=max(1, int(seconds * 1000)))
        except (redis.RedisError, OSError) as exc:
            log.warning("outcome store: Redis error on put (%s); the outcome is not shared", exc)

    def shorten(self, key: str, seconds: float) -> None:
        """A kept outcome was delivered: keep it only `seconds` more (never longer than it had)."""
        try:
            ttl = cast("int | None", self._r.pttl(self._key(key)))
            if ttl is not None and (ttl < 0 or ttl > seconds * 1000):
                self._r.pexpire(self._key(key), max(1, int(seconds * 1000)))
        except (redis.RedisError, OSError) as exc:
            log.warning("outcome store: Redis error on shorten (%s)", exc)

    def __contains__(self, key: str) -> bool:
        try:
            return bool(self._r.exists(self._key(key)))
        except (redis.RedisError, OSError):
            return False


def make_outcomes(settings: Settings) -> RedisOutcomeStore | None:
    """With REDIS_URL, the store on the job layer's client: /predict waits on it (outcomes, claims,
    a click's hand-off), so it has the short `request` timeouts and obeys the breaker (redisconn.py)."""
    if not settings.redis_url:
        return None
    return RedisOutcomeStore(redisconn.client(settings.redis_url, REQUEST), settings.redis_prefix)
