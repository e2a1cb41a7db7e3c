"""Durable per project x model_version x label agreement, fed by Label Studio's webhooks.

Each annotation contributes one `Contribution` (its per-label tally plus the scored samples the
learner fits thresholds to). Storing it by annotation id makes every update idempotent: an
ANNOTATION_UPDATED replaces that annotation's earlier contribution, a replayed webhook replaces it
with itself (counted once), ANNOTATIONS_DELETED removes it. The aggregate per project and
model_version is kept next to the contributions and changed in the same transaction.

`RedisLedger` is shared by every worker and replica (WATCH/MULTI on the annotation's key, so two
deliveries of one event racing each other still count once); `MemoryLedger` serves one process
when REDIS_URL is not set.

Redis keys (under REDIS_PREFIX + "review:"):
    ann:<annotation id>            JSON Contribution
    agg:<project>:<model_version>  hash "<label>\\x1f<field>" -> number (LabelStats fields)
    anns:<project>                 set of annotation ids (what the learner reads)
    versions:<project>             sorted set model_version -> last change (unix time)
    rev:<project>                  counter bumped on every change (learner cache key)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .match import Outcome, RegionOutcome
from .stats import COUNT_FIELDS, LabelStats, Tally, tally

if TYPE_CHECKING:
    from ..redisconn import Profile

_SEP = "\x1f"


@dataclass(frozen=True)
class Sample:
    """One predicted region's fate, for fitting thresholds and the calibration and counting relabels.
    `score` is Gemini's own confidence (before any calibration, match.py), `size` the region's box
    area as a share of the image (None for points, masks and choices)."""

    label: str
    outcome: str
    score: float | None
    new_label: str | None = None
    size: float | None = None


@dataclass(frozen=True)
class Contribution:
    annotation_id: int
    project: int
    task: int
    model_version: str
    tally: Tally
    samples: tuple[Sample, ...] = ()
    updated_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps({
            "annotation_id": self.annotation_id, "project": self.project, "task": self.task,
            "model_version": self.model_version, "tally": self.tally.as_dict(),
            "samples": [[s.label, s.outcome, s.score, s.new_label, s.size] for s in self.samples],
            "updated_at": self.updated_at,
        })

    @classmethod
    def from_json(cls, text: str | bytes) -> Contribution:
        d = json.loads(text)
        return cls(
            annotation_id=int(d["annotation_id"]), project=int(d["project"]), task=int(d["task"]),
            model_version=str(d["model_version"]), tally=Tally.from_dict(d["tally"]),
            samples=tuple(_sample(v) for v in d.get("samples") or ()),
            updated_at=float(d.get("updated_at") or 0.0),
        )


def _sample(v: Sequence[Any]) -> Sample:
    """A stored sample; those written before `size` existed have four fields."""
    return Sample(str(v[0]), str(v[1]), v[2], v[3], v[4] if len(v) > 4 else None)


def contribution(
    annotation_id: int, project: int, task: int, model_version: str, outcomes: Iterable[RegionOutcome]
) -> Contribution:
    outcomes = tuple(outcomes)
    samples = tuple(
        Sample(o.label, o.outcome.value, o.score, o.new_label, o.size) for o in outcomes if o.outcome is not Outcome.MISSED
    )
    return Contribution(annotation_id, project, task, model_version, tally(outcomes), samples)


class Ledger(Protocol):
    def replace(self, annotation_id: int, new: Contribution | None) -> Contribution | None: ...
    def totals(self, project: int, model_version: str) -> Tally: ...
    def versions(self, project: int) -> list[str]: ...
    def projects(self) -> list[int]: ...
    def contributions(self, project: int) -> list[Contribution]: ...
    def revision(self, project: int) -> int: ...
    def by_version(self, projects: Sequence[int]) -> dict[int, dict[str, Tally]]: ...


class MemoryLedger:
    """The ledger of one process (no REDIS_URL): same semantics, lost on restart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._anns: dict[int, Contribution] = {}
        self._agg: dict[tuple[int, str], Tally] = {}
        self._versions: dict[int, dict[str, int]] = {}  # model_version -> change sequence number
        self._rev: dict[int, int] = {}
        self._seq = 0

    def _apply(self, c: Contribution, sign: int) -> None:
        key = (c.project, c.model_version)
        self._agg[key] = self._agg.get(key, Tally()).plus(c.tally, sign)
        self._seq += 1
        self._versions.setdefault(c.project, {})[c.model_version] = self._seq
        self._rev[c.project] = self._rev.get(c.project, 0) + 1

    def replace(self, annotation_id: int, new: Contribution | None) -> Contribution | None:
        with self._lock:
            old = self._anns.pop(annotation_id, None)
            if old is not None:
                self._apply(old, -1)
            if new is not None:
                self._anns[annotation_id] = new
                self._apply(new, +1)
            return old

    def totals(self, project: int, model_version: str) -> Tally:
        with self._lock:
            return self._agg.get((project, model_version), Tally())

    def versions(self, project: int) -> list[str]:
        with self._lock:
            seen = self._versions.get(project, {})
            return sorted(seen, key=lambda v: seen[v], reverse=True)

    def projects(self) -> list[int]:
        with self._lock:
            return sorted(self._versions)

    def contributions(self, project: int) -> list[Contribution]:
        with self._lock:
            return [c for c in self._anns.values() if c.project == project]

    def revision(self, project: int) -> int:
        with self._lock:
            return self._rev.get(project, 0)

    def by_version(self, projects: Sequence[int]) -> dict[int, dict[str, Tally]]:
        """project -> model_version (oldest first) -> totals, for the projects that have any."""
        out = {p: {v: self.totals(p, v) for v in reversed(self.versions(p))} for p in projects}
        return {p: t for p, t in out.items() if t}


def _hash_of(t: Tally, sign: int) -> dict[str, float]:
    out: dict[str, float] = {f"{_SEP}annotations": float(sign * t.annotations)}
    for label, s in t.labels.items():
        for f in (*COUNT_FIELDS, "iou_n"):
            if getattr(s, f):
                out[f"{label}{_SEP}{f}"] = float(sign * getattr(s, f))
        if s.iou_sum:
            out[f"{label}{_SEP}iou_sum"] = sign * s.iou_sum
    return out


def _tally_of(raw: dict[Any, Any]) -> Tally:
    fields: dict[str, dict[str, float]] = {}
    annotations = 0
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        label, _, name = key.rpartition(_SEP)
        if not label and name == "annotations":
            annotations = int(float(v))
            continue
        fields.setdefault(label, {})[name] = float(v)
    for d in fields.values():  # HINCRBYFLOAT's binary round-off must not keep an emptied label alive
        d["iou_sum"] = round(d.get("iou_sum", 0.0), 9)
    labels = {label: LabelStats.from_dict(d) for label, d in fields.items()}
    return Tally({k: v for k, v in labels.items() if v != LabelStats()}, annotations)


class RedisLedger:
    """The shared ledger (see the module docstring for the key layout)."""

    def __init__(self, client: Any, prefix: str = "gemini-ls:") -> None:
        self._r = client
        self._p = f"{prefix}review:"

    @classmethod
    def from_url(cls, url: str, prefix: str, profile: Profile | None = None) -> RedisLedger:
        """`profile` (redisconn.py): `request` unless told otherwise (the webhook and /predict wait on
        the ledger; a CLI passes `job`)."""
        from .. import redisconn

        return cls(redisconn.client(url, profile or redisconn.REQUEST), prefix)

    def _k(self, *parts: object) -> str:
        return self._p + ":".join(str(p) for p in parts)

    def _queue(self, pipe: Any, c: Contribution, sign: int) -> None:
        agg = self._k("agg", c.project, c.model_version)
        for name, amount in _hash_of(c.tally, sign).items():
            if name.endswith(f"{_SEP}iou_sum"):
                pipe.hincrbyfloat(agg, name, amount)
            else:
                pipe.hincrby(agg, name, int(amount))
        pipe.zadd(self._k("versions", c.project), {c.model_version: time.time()})
        pipe.sadd(self._k("projects"), c.project)
        pipe.incr(self._k("rev", c.project))

    def replace(self, annotation_id: int, new: Contribution | None) -> Contribution | None:
        import redis

        key = self._k("ann", annotation_id)
        while True:
            with self._r.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    old = Contribution.from_json(raw) if raw else None
                    pipe.multi()
                    if old is not None:
                        self._queue(pipe, old, -1)
                        pipe.srem(self._k("anns", old.project), annotation_id)
                        pipe.delete(key)
                    if new is not None:
                        self._queue(pipe, new, +1)
                        pipe.sadd(self._k("anns", new.project), annotation_id)
                        pipe.set(key, new.to_json())
                    pipe.execute()
                    return old
                except redis.WatchError:
                    continue  # another delivery of this annotation won the race: redo on its state

    def totals(self, project: int, model_version: str) -> Tally:
        return _tally_of(self._r.hgetall(self._k("agg", project, model_version)))

    def versions(self, project: int) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else v for v in self._r.zrevrange(self._k("versions", project), 0, -1)]

    def projects(self) -> list[int]:
        return sorted(int(p) for p in self._r.smembers(self._k("projects")))

    def contributions(self, project: int) -> list[Contribution]:
        ids = list(self._r.smembers(self._k("anns", project)))
        out: list[Contribution] = []
        for i in range(0, len(ids), 500):
            keys = [self._k("ann", a.decode() if isinstance(a, bytes) else a) for a in ids[i : i + 500]]
            out.extend(Contribution.from_json(raw) for raw in self._r.mget(keys) if raw)
        return out

    def revision(self, project: int) -> int:
        return int(self._r.get(self._k("rev", project)) or 0)

    def by_version(self, projects: Sequence[int]) -> dict[int, dict[str, Tally]]:
        """As MemoryLedger.by_version, in two round trips whatever the number of projects (the jobs page)."""
        pipe = self._r.pipeline(transaction=False)
        for p in projects:
            pipe.zrevrange(self._k("versions", p), 0, -1)
        versions = {p: [v.decode() if isinstance(v, bytes) else v for v in reversed(vs)] for p, vs in zip(projects, pipe.execute())}
        pairs = [(p, v) for p, vs in versions.items() for v in vs]
        pipe = self._r.pipeline(transaction=False)
        for p, v in pairs:
            pipe.hgetall(self._k("agg", p, v))
        out: dict[int, dict[str, Tally]] = {}
        for (p, v), raw in zip(pairs, pipe.execute() if pairs else []):
            out.setdefault(p, {})[v] = _tally_of(raw)
        return out


def make_ledger(redis_url: str | None, prefix: str, profile: Profile | None = None) -> Ledger:
    return RedisLedger.from_url(redis_url, prefix, profile) if redis_url else MemoryLedger()
