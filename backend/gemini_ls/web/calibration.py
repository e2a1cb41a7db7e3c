"""The project page's score calibration diagram: Gemini's confidence (before) and the calibrated
score (after) against the share of regions annotators kept, per bin, over the diagonal; the numbers
of `gemini-ls report` (review/reliability.py) as the geometry of a server-rendered SVG (no script,
no matplotlib at request time, drawn by templates/project.html like web/chart.py's chart).

Read from the review ledger's samples of the project (review/ledger.py: the regions each annotation
reviewed, with Gemini's own confidence), the input REVIEW_LEARN=calibration fits its maps on. "After"
is cross-fitted (review/calibration.py `cross_fitted`: each region calibrated by a map fitted on the
other folds of annotations), so it says what calibration does on reviews it has not seen, and the
ECE on the page is the one `gemini-ls report` prints. Cross-fitting costs ~33 ms per 1000 reviewed
regions (tests/benchmarks/README.md), so a project's diagram is kept until its ledger revision moves
(`CalibrationCache`: one GET per page load while nobody reviews).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..review.calibration import ECE_BINS, MIN_REVIEWS, cross_fitted, ece, reliability
from ..review.ledger import Ledger, Sample
from .chart import Tick

SIZE = 260  # a square: the diagonal (perfectly calibrated) must look like one
LEFT, RIGHT, TOP, BOTTOM = 34, 10, 10, 34  # LEFT + RIGHT == TOP + BOTTOM: a square plot
BEFORE_COLOUR, AFTER_COLOUR = "#D55E00", "#0072B2"  # Okabe-Ito vermillion / blue, as the deletion chart
R_MIN, R_MAX = 2.5, 9.0  # a bin's marker radius, by the share of regions in it


@dataclass(frozen=True)
class Bin:
    predicted: float  # mean predicted probability of the bin's regions
    kept: float  # share of them annotators kept or adjusted
    regions: int


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    r: float
    title: str  # the bin in words (SVG <title>: shown on hover, read by screen readers)


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    ece: float | None
    bins: tuple[Bin, ...]
    points: str  # "x,y x,y" for <polyline>
    markers: tuple[Marker, ...]


@dataclass(frozen=True)
class Diagram:
    size: int
    plot: tuple[float, float, float, float]  # x0, y0, x1, y1 of the plot area
    diagonal: tuple[float, float, float, float]
    series: tuple[Series, ...]  # before, then after (once fitted)
    ticks: tuple[Tick, ...]  # 0, 0.5, 1 on both axes
    summary: str  # the text alternative (role="img" aria-label)


@dataclass(frozen=True)
class CalibrationView:
    reviews: int  # reviewed regions with a confidence
    kept_share: float
    fitted: bool  # enough reviews for a map (MIN_REVIEWS); below, "after" is Gemini's confidence itself
    applied: bool  # REVIEW_LEARN includes calibration: the predictions' scores are the calibrated ones
    min_reviews: int
    diagram: Diagram

    @property
    def before(self) -> Series:
        return self.diagram.series[0]

    @property
    def after(self) -> Series | None:
        return self.diagram.series[1] if len(self.diagram.series) > 1 else None

    def to_json(self) -> dict[str, Any]:
        def bins(s: Series | None) -> list[dict[str, Any]]:
            return [{"predicted": b.predicted, "kept": b.kept, "regions": b.regions} for b in s.bins] if s else []

        after = self.after
        return {"reviews": self.reviews, "kept_share": self.kept_share, "fitted": self.fitted, "applied": self.applied,
                "min_reviews": self.min_reviews, "bins_count": ECE_BINS, "ece_before": self.before.ece,
                "ece_after": after.ece if after else None, "bins_before": bins(self.before), "bins_after": bins(after)}


def _x(p: float) -> float:
    return round(LEFT + (SIZE - LEFT - RIGHT) * p, 1)


def _y(p: float) -> float:
    return round(TOP + (SIZE - TOP - BOTTOM) * (1 - p), 1)


def _series(name: str, colour: str, probs: Sequence[float], kept: Sequence[bool]) -> Series:
    bins = tuple(Bin(round(mp, 4), round(share, 4), n) for mp, share, n in reliability(probs, kept))
    total = max(1, len(kept))
    markers = tuple(Marker(_x(b.predicted), _y(b.kept), round(R_MIN + (R_MAX - R_MIN) * (b.regions / total) ** 0.5, 1),
                           f"{name}: predicted {b.predicted:.2f}, kept {100 * b.kept:.0f}% of {b.regions} region(s)")
                    for b in bins)
    err = ece(probs, kept)
    return Series(name, colour, None if err is None else round(err, 4), bins,
                  " ".join(f"{m.x},{m.y}" for m in markers), markers)


def _ece_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def calibration_view(groups: Sequence[Sequence[Sample]], *, applied: bool,
                     min_reviews: int = MIN_REVIEWS) -> CalibrationView | None:
    """`groups`: the reviewed regions per annotation (a fold is a set of annotations, as the report's).
    None when no reviewed region has a confidence (nothing to draw)."""
    triples = cross_fitted(groups, min_reviews=min_reviews)
    if not triples:
        return None
    kept = [t[2] for t in triples]
    fitted = len(triples) >= min_reviews
    series = [_series("Gemini's confidence", BEFORE_COLOUR, [t[0] for t in triples], kept)]
    if fitted:
        series.append(_series("calibrated score", AFTER_COLOUR, [t[1] for t in triples], kept))
    ticks = (*(Tick(_x(v), SIZE - BOTTOM + 14, f"{v:g}") for v in (0.0, 0.5, 1.0)),
             *(Tick(LEFT - 5, _y(v) + 4, f"{v:g}") for v in (0.0, 0.5, 1.0)))
    summary = (f"Reliability diagram of {len(triples)} reviewed regions: expected calibration error "
               + "; ".join(f"{s.name} {_ece_text(s.ece)}" for s in series))
    diagram = Diagram(SIZE, (LEFT, TOP, SIZE - RIGHT, SIZE - BOTTOM), (_x(0), _y(0), _x(1), _y(1)), tuple(series),
                      ticks, summary)
    return CalibrationView(len(triples), round(sum(kept) / len(kept), 4), fitted, applied, min_reviews, diagram)


def calibration_of(ledger: Ledger, project: int, applied: bool) -> CalibrationView | None:
    """The project's diagram from its reviewed regions, one group per annotation (in annotation
    order, so the folds and the numbers are those of `gemini-ls report`)."""
    groups = [c.samples for c in sorted(ledger.contributions(project), key=lambda c: c.annotation_id)]
    return calibration_view(groups, applied=applied)


class CalibrationCache:
    """Each project's diagram, computed again only when the project's ledger revision (bumped by
    every reviewed annotation, review/ledger.py) has moved; the `size` most recently shown projects."""

    def __init__(self, ledger: Ledger, applied: bool, size: int = 64) -> None:
        self._ledger = ledger
        self._applied = applied
        self._size = size
        self._lock = threading.Lock()
        self._views: OrderedDict[int, tuple[int, CalibrationView | None]] = OrderedDict()

    def get(self, project: int) -> CalibrationView | None:
        revision = self._ledger.revision(project)
        with self._lock:
            hit = self._views.get(project)
            if hit is not None and hit[0] == revision:
                self._views.move_to_end(project)
                return hit[1]
        view = calibration_of(self._ledger, project, self._applied)  # outside the lock: other projects go on
        with self._lock:
            self._views[project] = (revision, view)
            self._views.move_to_end(project)
            while len(self._views) > self._size:
                self._views.popitem(last=False)
        return view
