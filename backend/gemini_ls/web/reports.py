"""The review loop's numbers per project for the page and GET /api/projects/<id>/report: read from
the webhook-fed ledger (review/ledger.py) the learner already uses, so nothing asks Label Studio on
a page load. The JSON is `gemini-ls report --json`'s (review/report.py `render_json`), plus the
trend of each label's deletion rate over the model versions, the model_version history with what
changed (web/history.py), the last `gemini-ls evaluate` scorecards (review/scorecards.py) and the
score calibration's reliability diagram (web/calibration.py, from the ledger's reviewed regions)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..review.ledger import Ledger
from ..review.report import deletion_rate, render_json, rows
from ..review.scorecards import Evaluation
from ..review.stats import LabelStats, Tally
from .calibration import CalibrationCache, CalibrationView, calibration_of
from .chart import Chart, deletion_chart
from .history import VersionChange, history

# project ids -> their stored `evaluate` runs (review/scorecards.py `load_many` on the page's Redis)
ScoreReader = Callable[[Sequence[int]], dict[int, Evaluation]]

PROJECTS_SHOWN = 50  # projects on the page (newest ids first); the JSON takes any id
PANELS_TTL = 10.0  # seconds the page's project panels are reused: reviews change in minutes, a page loads in ms


@dataclass(frozen=True)
class LabelRow:
    label: str
    predicted: int
    kept: int  # accepted as predicted
    adjusted: int
    deleted: int
    missed: int
    trend: tuple[float | None, ...]  # deletion rate per model_version, oldest first


@dataclass(frozen=True)
class ProjectView:
    project: int
    versions: tuple[str, ...]  # oldest first
    annotations: int  # of the newest version
    rows: tuple[LabelRow, ...]  # the newest version's labels, then "all"
    history: tuple[VersionChange, ...] = ()  # oldest first
    chart: Chart | None = None
    evaluation: Evaluation | None = None  # the last `gemini-ls evaluate` run, when stored
    calibration: CalibrationView | None = None  # None: no reviewed region with a confidence (or a summary row)
    label_count: int = 0


def _trend(by_version: dict[str, Tally], label: str) -> tuple[float | None, ...]:
    return tuple(deletion_rate(t.total() if label == "all" else t.labels.get(label, LabelStats())) for t in by_version.values())


def _history(by_version: dict[str, Tally]) -> tuple[VersionChange, ...]:
    return history(list(by_version), {v: set(t.labels) for v, t in by_version.items()},
                   {v: t.annotations for v, t in by_version.items()})


def project_view(project: int, by_version: dict[str, Tally], evaluation: Evaluation | None = None, *, full: bool = True) -> ProjectView:
    """`full`: every label, the chart and the history (a project's own page); the jobs page's summary
    row needs only the "all" row and the number of labels (a third of the work, read cold per load)."""
    newest = list(by_version.values())[-1]
    if not full:
        totals = [t.total() for t in by_version.values()]
        s = totals[-1]
        everything = LabelRow("all", s.predicted, s.accepted, s.adjusted, s.deleted, s.missed, tuple(deletion_rate(x) for x in totals))
        return ProjectView(project, tuple(by_version), newest.annotations, (everything,), label_count=len(newest.labels))
    table = tuple(LabelRow(label, s.predicted, s.accepted, s.adjusted, s.deleted, s.missed, _trend(by_version, label))
                  for label, s in rows(newest))
    chart = deletion_chart(list(by_version), [(r.label, r.predicted, r.trend) for r in table])
    return ProjectView(project, tuple(by_version), newest.annotations, table, _history(by_version), chart, evaluation,
                       label_count=len(table) - 1)


def project_views(ledger: Ledger, limit: int = PROJECTS_SHOWN) -> list[ProjectView]:
    """The jobs page's project summaries (newest ids first): the table, no chart, history or scorecards."""
    found = ledger.by_version(sorted(ledger.projects(), reverse=True)[:limit])
    return [project_view(p, t, full=False) for p, t in sorted(found.items(), reverse=True)]


def one_project(ledger: Ledger, project: int, scores: ScoreReader | None = None, *,
                calibrations: CalibrationCache | None = None) -> ProjectView | None:
    """One project's full panel (its page, /projects/<id>), read fresh: one project is cheap.
    `calibrations`: the server's (its REVIEW_LEARN says whether scores are calibrated); None: computed here."""
    by_version = ledger.by_version([project]).get(project)
    if not by_version:
        return None
    view = project_view(project, by_version, scores([project]).get(project) if scores is not None else None)
    return replace(view, calibration=_calibration(ledger, project, calibrations))


def _calibration(ledger: Ledger, project: int, calibrations: CalibrationCache | None) -> CalibrationView | None:
    return calibrations.get(project) if calibrations is not None else calibration_of(ledger, project, False)


def project_report(ledger: Ledger, project: int, scores: ScoreReader | None = None, *,
                   calibrations: CalibrationCache | None = None) -> dict[str, Any] | None:
    by_version = ledger.by_version([project]).get(project) or {}
    evaluation = scores([project]).get(project) if scores is not None else None
    if not by_version and evaluation is None:
        return None
    body = json.loads(render_json(by_version, project)) if by_version else {"project": project, "model_versions": {}}
    labels = sorted({label for t in by_version.values() for label in t.labels} | {"all"}) if by_version else []
    body["versions"] = list(by_version)  # oldest first
    body["deletion_rate_trend"] = {label: list(_trend(by_version, label)) for label in labels}
    body["history"] = [{"model_version": h.version, "annotations": h.annotations, "changes": list(h.changes)}
                       for h in _history(by_version)]
    body["evaluation"] = evaluation.to_json() if evaluation is not None else None
    calibration = _calibration(ledger, project, calibrations) if by_version else None
    body["calibration"] = calibration.to_json() if calibration is not None else None
    return body


class CachedPanels:
    """The page's project panels, read from the ledger at most once per PANELS_TTL per process:
    reading 50 projects x their versions costs tens of ms of reply parsing, reviews change slowly,
    and the live part of the page (the jobs) does not go through here."""

    def __init__(self, ledger: Ledger, ttl: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._ledger = ledger
        self._ttl = PANELS_TTL if ttl is None else ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._views: list[ProjectView] = []

    def views(self) -> list[ProjectView]:
        with self._lock:
            if self._clock() - self._at < self._ttl:
                return self._views
        fresh = project_views(self._ledger)  # outside the lock: a slow Redis holds no other request
        with self._lock:
            self._views, self._at = fresh, self._clock()
        return fresh
