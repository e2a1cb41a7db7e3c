"""Closing the loop: what annotators did with our pre-annotations.

Label Studio keeps a region's `id` when an annotator accepts a predicted region, so comparing the
ids and values of a submitted annotation with what we predicted for that task tells us how many
regions were kept as they were, edited, removed, or drawn by hand.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def _digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    kept: int
    edited: int
    removed: int
    added: int

    def as_dict(self) -> dict[str, int]:
        return {"kept": self.kept, "edited": self.edited, "removed": self.removed, "added": self.added}


def compare(predicted: Mapping[str, str], annotation_result: Iterable[Mapping[str, Any]]) -> Verdict:
    """predicted: region id -> digest of its value; annotation_result: the annotation's regions."""
    seen: set[str] = set()
    kept = edited = added = 0
    for region in annotation_result:
        rid = region.get("id")
        if not isinstance(rid, str) or rid not in predicted:
            added += 1
            continue
        seen.add(rid)
        if _digest(region.get("value")) == predicted[rid]:
            kept += 1
        else:
            edited += 1
    return Verdict(kept=kept, edited=edited, removed=len(set(predicted) - seen), added=added)


class PredictionLedger:
    """Region ids and value digests of our latest prediction per task (bounded, in memory)."""

    def __init__(self, max_tasks: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._tasks: OrderedDict[Any, dict[str, str]] = OrderedDict()
        self._max = max_tasks

    def record(self, task_id: Any, regions: Iterable[Mapping[str, Any]]) -> None:
        if task_id is None:
            return
        entry = {r["id"]: _digest(r.get("value")) for r in regions if isinstance(r.get("id"), str)}
        with self._lock:
            self._tasks[task_id] = entry
            self._tasks.move_to_end(task_id)
            while len(self._tasks) > self._max:
                self._tasks.popitem(last=False)

    def get(self, task_id: Any) -> dict[str, str] | None:
        with self._lock:
            return self._tasks.get(task_id)
