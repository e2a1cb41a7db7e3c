"""Per-label counts of region outcomes, and the precision / recall / mean IoU derived from them.

One `LabelStats` table is shared by the webhook ledger, `gemini-ls report` and `gemini-ls
evaluate`, so all three compute the same numbers the same way:

- predicted = accepted + adjusted + relabelled + deleted (regions we predicted with this label);
- true positives = accepted + adjusted (matched, and the label was right);
- precision = TP / predicted;
- recall = TP / (TP + missed + relabelled_in), where relabelled_in counts regions we predicted
  under ANOTHER label that annotators relabelled to this one (for this label they were misses);
- mean IoU = mean similarity of the matched regions (accepted, adjusted, relabelled).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .match import OUTCOMES, Outcome, RegionOutcome

COUNT_FIELDS: tuple[str, ...] = (*OUTCOMES, "relabelled_in")


@dataclass(frozen=True)
class LabelStats:
    accepted: int = 0
    adjusted: int = 0
    relabelled: int = 0
    deleted: int = 0
    missed: int = 0
    relabelled_in: int = 0
    iou_sum: float = 0.0
    iou_n: int = 0

    @property
    def predicted(self) -> int:
        return self.accepted + self.adjusted + self.relabelled + self.deleted

    @property
    def true_positives(self) -> int:
        return self.accepted + self.adjusted

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        actual = self.true_positives + self.missed + self.relabelled_in
        return self.true_positives / actual if actual else None

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / self.iou_n if self.iou_n else None

    def plus(self, other: LabelStats, sign: int = 1) -> LabelStats:
        return LabelStats(
            **{f: getattr(self, f) + sign * getattr(other, f) for f in (*COUNT_FIELDS, "iou_n")},
            iou_sum=self.iou_sum + sign * other.iou_sum,
        )

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "predicted": self.predicted,
            **{f: getattr(self, f) for f in COUNT_FIELDS},
            "precision": self.precision,
            "recall": self.recall,
            "mean_iou": self.mean_iou,
            "iou_sum": self.iou_sum,
            "iou_n": self.iou_n,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, float | int | None]) -> LabelStats:
        return cls(
            **{f: int(d.get(f) or 0) for f in (*COUNT_FIELDS, "iou_n")},
            iou_sum=float(d.get("iou_sum") or 0.0),
        )


@dataclass(frozen=True)
class Tally:
    """LabelStats per label, plus the number of annotations counted."""

    labels: Mapping[str, LabelStats] = field(default_factory=dict)
    annotations: int = 0

    def plus(self, other: Tally, sign: int = 1) -> Tally:
        merged = dict(self.labels)
        for label, s in other.labels.items():
            merged[label] = merged.get(label, LabelStats()).plus(s, sign)
        return Tally({k: v for k, v in merged.items() if v != LabelStats()}, self.annotations + sign * other.annotations)

    def total(self) -> LabelStats:
        out = LabelStats()
        for s in self.labels.values():
            out = out.plus(s)
        return out

    def as_dict(self) -> dict:
        return {"annotations": self.annotations, "labels": {k: v.as_dict() for k, v in sorted(self.labels.items())}}

    @classmethod
    def from_dict(cls, d: Mapping) -> Tally:
        return cls({k: LabelStats.from_dict(v) for k, v in (d.get("labels") or {}).items()}, int(d.get("annotations") or 0))


def tally(outcomes: Iterable[RegionOutcome], annotations: int = 1) -> Tally:
    """Count one annotation's (or many annotations') region outcomes per label."""
    labels: dict[str, LabelStats] = {}
    for o in outcomes:
        s = labels.get(o.label, LabelStats())
        s = replace(s, **{o.outcome.value: getattr(s, o.outcome.value) + 1})
        if o.similarity is not None and o.outcome is not Outcome.DELETED:
            s = replace(s, iou_sum=s.iou_sum + o.similarity, iou_n=s.iou_n + 1)
        labels[o.label] = s
        if o.outcome is Outcome.RELABELLED and o.new_label is not None:
            t = labels.get(o.new_label, LabelStats())
            labels[o.new_label] = replace(t, relabelled_in=t.relabelled_in + 1)
    return Tally(labels, annotations)
