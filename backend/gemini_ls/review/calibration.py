"""Calibration: Gemini's confidence -> the probability that annotators keep (or only adjust) a region.

Gemini's "confidence" is verbalised, and verbalised confidence is poorly calibrated (arXiv
2604.02543): a region at 0.9 is not kept nine times in ten. What annotators did with our regions is
in the review ledger, so we learn the map from it (REVIEW_LEARN=calibration):

- outcome: kept = accepted or adjusted (the region stays, at most moved); not kept = deleted or
  relabelled (the annotator had to fix what the region says). Regions without a confidence are
  not used.
- project-wide map: isotonic regression (pool-adjacent-violators, weighted by how many regions had
  each confidence) of kept on confidence: monotone, no shape assumed. Between the fitted points it
  is linear, beyond them flat.
- per label: a label with at least MIN_LABEL reviewed regions gets its own isotonic map, shrunk
  toward the project-wide one: n / (n + SHRINK) of its own, the rest project-wide, so a label seen
  twelve times barely moves off the project map and one seen hundreds of times follows its own.
- identity: fewer than MIN_REVIEWS reviewed regions in the project give no map at all (the score
  stays Gemini's): a handful of reviews would only replace one miscalibration with another.

The fitted maps are stored at GRID_STEP intervals of confidence with 3 decimals (a blend of two
monotone maps is monotone, and sampling on a grid keeps it so): compact, and the digest in
model_version does not move with every annotation that changes the fourth decimal.

Box size is recorded in the ledger (`Sample.size`, relative area) but not a feature of this map: on
our data it adds nothing over the label (most labels have one typical size); it is there for a
two-feature fit should a project need one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..scoremap import ScoreMap
from .ledger import Sample

MIN_REVIEWS = 50  # reviewed scored regions in the project before any map (below: identity)
MIN_LABEL = 10  # reviewed regions of a label before it has a map of its own
SHRINK = 30.0  # pseudo-count of the project-wide map in a label's map
GRID_STEP = 0.025
KEPT = ("accepted", "adjusted")
NOT_KEPT = ("deleted", "relabelled")
ECE_BINS = 10


@dataclass(frozen=True)
class Calibration:
    """The fitted maps: `default` for every label, `labels` for those with enough reviews."""

    default: ScoreMap
    labels: tuple[tuple[str, ScoreMap], ...] = ()
    reviews: int = 0  # reviewed regions the maps were fitted on

    def map_for(self, label: str) -> ScoreMap:
        return next((m for name, m in self.labels if name == label), self.default)

    def probability(self, label: str, raw: float) -> float:
        return self.map_for(label)(raw)

    def as_dict(self) -> dict:
        return {"default": [list(self.default.xs), list(self.default.ys)],
                "labels": {name: [list(m.xs), list(m.ys)] for name, m in self.labels}, "reviews": self.reviews}

    @classmethod
    def from_dict(cls, d: Mapping) -> Calibration:
        def one(v: Sequence) -> ScoreMap:
            return ScoreMap(tuple(float(x) for x in v[0]), tuple(float(y) for y in v[1]))

        labels = tuple(sorted((str(k), one(v)) for k, v in (d.get("labels") or {}).items()))
        return cls(one(d["default"]), labels, int(d.get("reviews") or 0))

    def digest(self) -> str:
        """Of the maps only (not of `reviews`): the same maps are the same predictions."""
        blob = json.dumps({"d": [self.default.xs, self.default.ys], "l": [[n, m.xs, m.ys] for n, m in self.labels]})
        return hashlib.sha256(blob.encode()).hexdigest()[:8]


def observations(samples: Iterable[Sample]) -> list[tuple[str, float, bool]]:
    """(label, raw confidence, kept) of every reviewed region that had a confidence."""
    return [(s.label, float(s.score), s.outcome in KEPT) for s in samples
            if s.score is not None and s.outcome in (*KEPT, *NOT_KEPT)]


def isotonic(xs: Sequence[float], kept: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing fit of kept (0/1) on xs, at the distinct xs."""
    order = np.argsort(np.asarray(xs, float), kind="stable")
    x = np.asarray(xs, float)[order]
    y = np.asarray(kept, float)[order]
    ux, start = np.unique(x, return_index=True)
    sums = np.add.reduceat(y, start)
    counts = np.diff(np.append(start, len(x))).astype(float)
    # blocks as [value, weight, number of distinct xs]; merge while a block is above its successor
    values: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for s, c in zip(sums, counts):
        values.append(s / c)
        weights.append(c)
        sizes.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            w = weights[-2] + weights[-1]
            v = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            n = sizes[-2] + sizes[-1]
            del values[-1], weights[-1], sizes[-1]
            values[-1], weights[-1], sizes[-1] = v, w, n
    fitted = np.repeat(values, sizes)
    return ux, fitted


def _on_grid(ux: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    grid = np.round(np.arange(0.0, 1.0 + GRID_STEP / 2, GRID_STEP), 6)
    return np.interp(grid, ux, fitted)


def _score_map(values: np.ndarray) -> ScoreMap:
    grid = np.round(np.arange(0.0, 1.0 + GRID_STEP / 2, GRID_STEP), 6)
    ys = np.round(np.maximum.accumulate(np.clip(values, 0.0, 1.0)), 3)  # rounding must not break monotony
    return ScoreMap(tuple(float(x) for x in grid), tuple(float(y) for y in ys))


def fit(samples: Iterable[Sample], min_reviews: int = MIN_REVIEWS, min_label: int = MIN_LABEL,
        shrink: float = SHRINK) -> Calibration | None:
    """The calibration the reviews support, or None (identity) below `min_reviews` (module docstring)."""
    obs = observations(samples)
    if len(obs) < max(1, min_reviews):
        return None
    project = _on_grid(*isotonic([o[1] for o in obs], [o[2] for o in obs]))
    by_label: dict[str, list[tuple[float, bool]]] = {}
    for label, raw, kept in obs:
        by_label.setdefault(label, []).append((raw, kept))
    labels = []
    for label, pairs in sorted(by_label.items()):
        if len(pairs) < min_label:
            continue
        own = _on_grid(*isotonic([p[0] for p in pairs], [p[1] for p in pairs]))
        w = len(pairs) / (len(pairs) + shrink)
        labels.append((label, _score_map(w * own + (1 - w) * project)))
    return Calibration(_score_map(project), tuple(labels), len(obs))


# ----- measuring it ------------------------------------------------------------------------------


def reliability(probs: Sequence[float], kept: Sequence[bool], bins: int = ECE_BINS) -> list[tuple[float, float, int]]:
    """(mean predicted, share kept, regions) per equal-width bin of predicted probability (non-empty bins)."""
    p = np.asarray(probs, float)
    y = np.asarray(kept, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            out.append((float(p[sel].mean()), float(y[sel].mean()), int(sel.sum())))
    return out


def ece(probs: Sequence[float], kept: Sequence[bool], bins: int = ECE_BINS) -> float | None:
    """Expected calibration error: the regions-weighted mean |predicted - kept share| over the bins."""
    n = len(probs)
    if not n:
        return None
    return sum(abs(mp - share) * k for mp, share, k in reliability(probs, kept, bins)) / n


def cross_fitted(groups: Sequence[Sequence[Sample]], folds: int = 5,
                 min_reviews: int = MIN_REVIEWS) -> list[tuple[float, float, bool]]:
    """(raw, calibrated, kept) per reviewed region, each calibrated by a map fitted on the OTHER folds
    of annotations (`groups`, one per annotation): what calibration would have done on reviews it had
    not seen. A fold whose training part is too small for a map keeps the raw confidence."""
    out: list[tuple[float, float, bool]] = []
    for k in range(folds):
        train = [s for i, g in enumerate(groups) if i % folds != k for s in g]
        cal = fit(train, min_reviews)
        for i, g in enumerate(groups):
            if i % folds == k:
                out.extend((raw, cal.probability(label, raw) if cal else raw, kept) for label, raw, kept in observations(g))
    return out
