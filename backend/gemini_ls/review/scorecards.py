"""The last `gemini-ls evaluate` of each project, kept where the jobs page can read it (docs/page.md).

`gemini-ls evaluate` prints its scorecards; with REDIS_URL it also stores them, one JSON document
per project under `{REDIS_PREFIX}evaluate:{project}` (the newest run replaces the previous one), as
plain numbers: per variant its settings line, per label precision / recall / mean IoU, tokens and
estimated dollars per task and latency. The page and GET /api/projects/<id>/report read it in one
GET per project; nothing else writes it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KEEP_SECONDS = 180 * 24 * 3600


@dataclass(frozen=True)
class LabelScore:
    label: str
    precision: float | None
    recall: float | None
    mean_iou: float | None


@dataclass(frozen=True)
class Scorecard:
    variant: str
    settings: str  # the variant's settings, as `evaluate` prints them
    tasks: int
    failed: int
    labels: tuple[LabelScore, ...]  # the labels, then "all"
    input_tokens_per_task: float
    output_tokens_per_task: float
    usd_per_task: float | None
    latency_p50: float | None


@dataclass(frozen=True)
class Evaluation:
    project: int
    at: float  # Unix time of the run
    cards: tuple[Scorecard, ...]

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "at": self.at, "scorecards": [
            {**{k: v for k, v in c.__dict__.items() if k != "labels"},
             "labels": {s.label: {"precision": s.precision, "recall": s.recall, "mean_iou": s.mean_iou} for s in c.labels}}
            for c in self.cards]}


def from_json(body: Mapping[str, Any]) -> Evaluation:
    cards = tuple(
        Scorecard(variant=str(c["variant"]), settings=str(c["settings"]), tasks=int(c["tasks"]), failed=int(c["failed"]),
                  labels=tuple(LabelScore(label, s.get("precision"), s.get("recall"), s.get("mean_iou"))
                               for label, s in c["labels"].items()),
                  input_tokens_per_task=float(c["input_tokens_per_task"]), output_tokens_per_task=float(c["output_tokens_per_task"]),
                  usd_per_task=c.get("usd_per_task"), latency_p50=c.get("latency_p50"))
        for c in body.get("scorecards", ()))
    return Evaluation(int(body["project"]), float(body["at"]), cards)


def scorecard(name: str, settings_line: str, tally: Any, tasks: int, failed: int, input_tokens: float, output_tokens: float,
              usd_per_task: float | None, latencies: Sequence[float]) -> Scorecard:
    """One variant's card from what `evaluate` measured (a review/stats.py Tally for the labels)."""
    rows = [(label, tally.labels[label]) for label in sorted(tally.labels)] + [("all", tally.total())]
    n = max(1, tasks)
    return Scorecard(name, settings_line, tasks, failed,
                     tuple(LabelScore(label, s.precision, s.recall, s.mean_iou) for label, s in rows),
                     input_tokens / n, output_tokens / n, usd_per_task,
                     statistics.median(latencies) if latencies else None)


def _key(prefix: str, project: int) -> str:
    return f"{prefix}evaluate:{int(project)}"


def save(client: Any, prefix: str, evaluation: Evaluation) -> None:
    client.set(_key(prefix, evaluation.project), json.dumps(evaluation.to_json()), ex=KEEP_SECONDS)


def load_many(client: Any, prefix: str, projects: Sequence[int]) -> dict[int, Evaluation]:
    """The stored evaluations of these projects (one MGET): project -> its last run."""
    if not projects:
        return {}
    out = {}
    for p, raw in zip(projects, client.mget([_key(prefix, p) for p in projects])):
        if raw:
            out[p] = from_json(json.loads(raw))
    return out
