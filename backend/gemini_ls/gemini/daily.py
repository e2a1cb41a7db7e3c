"""Today's Gemini spend and Files API cache savings, counted once for every process (the jobs
page's Gemini panel, docs/page.md).

/metrics counts per process (a Prometheus scrape sums them); the page needs one number for the
whole deployment without a Prometheus, so each synchronous generateContent call and each Files
API cache look-up also increments a per-UTC-day hash in Redis: `{REDIS_PREFIX}usage:{YYYY-MM-DD}`
with fields `tokens:{model}:{input|output|thoughts|cached}` (cached: of input, from a context cache), `requests:{model}`, `files:hit`,
`files:miss`, `files:bytes_saved` (an image sent as a cached file URI instead of uploaded again
or sent inline), kept 8 days. One pipelined HINCRBY per event, through redisconn.py's `request`
profile and breaker: a Redis that does not answer costs the call nothing but the count (logged
once). Without REDIS_URL the counts are this process's, in memory. Batch API spend is per job
(jobs/state.py), not here; a job's own tally is gemini/usage.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from .pricing import Tokens, cost_by_model

log = logging.getLogger(__name__)

KEEP_SECONDS = 8 * 24 * 3600


def day_of(wall: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(wall))


@dataclass(frozen=True)
class DayUsage:
    day: str
    by_model: Mapping[str, Tokens]
    files_hits: int
    files_misses: int
    files_bytes_saved: int

    @property
    def files_hit_rate(self) -> float | None:
        looked = self.files_hits + self.files_misses
        return self.files_hits / looked if looked else None

    def cost_usd(self, overrides: Mapping[str, tuple[float, float]] | None = None) -> float | None:
        """At the synchronous price (None: a model without a known price)."""
        return cost_by_model(self.by_model, overrides).sync_usd

    def to_json(self, overrides: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Any]:
        return {"day": self.day, "cost_usd": self.cost_usd(overrides),
                "tokens": {m: {"input": t.prompt, "output": t.output, "thoughts": t.thoughts, "requests": t.requests,
                               "cached": t.cached}
                           for m, t in sorted(self.by_model.items())},
                "files_cache": {"hits": self.files_hits, "misses": self.files_misses, "hit_rate": self.files_hit_rate,
                                "bytes_saved": self.files_bytes_saved}}


def parse_day(day: str, raw: Mapping[Any, Any]) -> DayUsage:
    fields = {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}
    models: dict[str, dict[str, int]] = {}
    for name, value in fields.items():
        kind, _, rest = name.partition(":")
        if kind == "tokens":
            model, _, direction = rest.rpartition(":")
            models.setdefault(model, {})[direction] = value
        elif kind == "requests":
            models.setdefault(rest, {})["requests"] = value
    by_model = {m: Tokens(d.get("input", 0), d.get("output", 0), d.get("thoughts", 0), d.get("requests", 0), d.get("cached", 0))
                for m, d in models.items()}
    return DayUsage(day, by_model, fields.get("files:hit", 0), fields.get("files:miss", 0), fields.get("files:bytes_saved", 0))


class DailyUsage:
    """The counter: `client` None keeps this process's counts in memory."""

    def __init__(self, client: Any = None, prefix: str = "gemini-ls:", wall: Any = time.time) -> None:
        self._r = client
        self._p = prefix
        self._wall = wall
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, int]] = {}
        self._warned = False

    def _key(self, day: str) -> str:
        return f"{self._p}usage:{day}"

    def _add(self, amounts: Mapping[str, int]) -> None:
        day = day_of(self._wall())
        if self._r is None:
            with self._lock:
                counts = self._memory.setdefault(day, {})
                for name, n in amounts.items():
                    counts[name] = counts.get(name, 0) + n
            return
        try:
            pipe = self._r.pipeline(transaction=False)
            for name, n in amounts.items():
                pipe.hincrby(self._key(day), name, n)
            pipe.expire(self._key(day), KEEP_SECONDS)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:  # a count lost, never a prediction
            if not self._warned:
                self._warned = True
                log.warning("today's Gemini usage not counted in Redis (%s); the jobs page will show less", exc)

    def record_call(self, model: str, input_tokens: int, output_tokens: int, thoughts_tokens: int, cached_tokens: int = 0) -> None:
        amounts = {f"requests:{model}": 1}
        for direction, n in (("input", input_tokens), ("output", output_tokens), ("thoughts", thoughts_tokens),
                             ("cached", cached_tokens)):
            if n > 0:
                amounts[f"tokens:{model}:{direction}"] = n
        self._add(amounts)

    def record_file_lookup(self, hit: bool, size: int) -> None:
        self._add({"files:hit": 1, "files:bytes_saved": size} if hit else {"files:miss": 1})

    def today(self) -> DayUsage:
        day = day_of(self._wall())
        if self._r is None:
            with self._lock:
                return parse_day(day, dict(self._memory.get(day, {})))
        return parse_day(day, self._r.hgetall(self._key(day)))


def make_daily_usage(redis_url: str | None, prefix: str) -> DailyUsage:
    if not redis_url:
        return DailyUsage()
    from .. import redisconn

    return DailyUsage(redisconn.client(redis_url, redisconn.REQUEST), prefix)
