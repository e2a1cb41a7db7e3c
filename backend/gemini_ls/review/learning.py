"""Learning without training weights, from the review ledger (REVIEW_LEARN, each part switchable).

- thresholds: a score threshold per label, fitted to the history so that F1 over our scored
  regions is highest. The threshold decides whether a region is worth showing, so the positives
  are the regions annotators kept (accepted, adjusted, and relabelled: the geometry was right, the
  label is the synonyms' business) and the negatives the ones they deleted. Ties go to fewer
  false positives, then to the lower threshold. A label annotators delete every time gets a
  threshold above 1: it is no longer predicted.
- synonyms: "we said A, annotators say B": when at least SYNONYM_SHARE of A's matched regions
  were relabelled to the same B (and at least min_samples of them), A is answered as B. Weaker
  relabel patterns are only reported (`gemini-ls report`) as suggested hint changes.
- calibration: per label, a monotone map of Gemini's confidence to the probability that annotators
  keep or only adjust the region (review/calibration.py, its own thresholds); the region `score`
  becomes that probability and the task `score` the product over its regions (regions/scores.py).

Thresholds and synonyms need at least `min_samples` scored regions of a label. The learned state
becomes part of the effective project spec (`LearnedState.applied`): thresholds where regions are
selected (regions/selection.py, beside model_score_threshold), synonyms where Gemini's labels are
matched (gemini/labels.py), the calibration where a task's regions are finished (regions/scores.py).
Its digest becomes part of model_version ("...-l<digest>"), so Label Studio shows which
predictions came from which learned state and re-predicts when it changes.
Fitting reads the ledger only when its revision changed, and at most once per REFIT_SECONDS per
project (/setup comes before every batch; a busy project must neither re-read its whole history
nor change model_version with every annotation).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from ..labelconfig import LabelTuning, ProjectSpec
from ..settings import Settings
from . import calibration as calib
from .calibration import Calibration
from .fewshot import Example, ExampleSource, FewShotBook, candidate, examples_tag, rank
from .ledger import Ledger, Sample

log = logging.getLogger("gemini_ls.review")

SUPPRESS = 1.01  # a threshold no score (0-1) reaches
SYNONYM_SHARE = 0.8
REFIT_SECONDS = 30.0
PARTS = ("thresholds", "synonyms", "calibration")
_POSITIVE = ("accepted", "adjusted", "relabelled")


@dataclass(frozen=True)
class LearnedState:
    thresholds: Mapping[str, float] = field(default_factory=dict)
    synonyms: Mapping[str, str] = field(default_factory=dict)
    examples: tuple[Example, ...] = ()  # few-shot (review/fewshot.py), FEW_SHOT_EXAMPLES
    calibration: Calibration | None = None  # None: scores stay Gemini's (review/calibration.py)

    @property
    def empty(self) -> bool:
        return not self.thresholds and not self.synonyms and not self.examples and self.calibration is None

    def tag(self) -> str | None:
        """`l<digest>` of thresholds, synonyms and the calibration's maps, `e<digest>` of the example
        set, joined by "-". (A state without calibration digests as it did before calibration existed.)"""
        parts = []
        if self.thresholds or self.synonyms or self.calibration is not None:
            learned: dict = {"t": dict(self.thresholds), "s": dict(self.synonyms)}
            if self.calibration is not None:
                learned["c"] = self.calibration.digest()
            blob = json.dumps(learned, sort_keys=True).encode()
            parts.append("l" + hashlib.sha256(blob).hexdigest()[:8])
        if (examples := examples_tag(self.examples)) is not None:
            parts.append(examples)
        return "-".join(parts) or None

    def as_dict(self) -> dict:
        return {"thresholds": dict(sorted(self.thresholds.items())), "synonyms": dict(sorted(self.synonyms.items())),
                "examples": [e.key for e in self.examples],
                "calibration": self.calibration.as_dict() if self.calibration is not None else None}

    def applied(self, spec: ProjectSpec) -> ProjectSpec:
        """The effective spec: each control carries the thresholds and synonyms of its own labels
        (`LabelTuning`, applied by regions/selection.py and gemini/labels.py), and the spec the tag
        model_version ends with. A synonym whose target is no label of the control is left out (Label
        Studio would refuse the region). Everything that predicts for a project starts from this spec,
        so no path can predict under the learned version without the learned state, or the reverse."""
        if self.empty:
            return spec
        controls = []
        cal = self.calibration
        for control in spec.controls:
            values = {label.value for label in control.labels}
            tuning = LabelTuning(
                thresholds=tuple(sorted((k, float(v)) for k, v in self.thresholds.items() if k in values)),
                synonyms=tuple(sorted((a, b) for a, b in self.synonyms.items() if a in values and b in values)),
                calibration=tuple((k, m) for k, m in cal.labels if k in values) if cal is not None else (),
                calibration_default=cal.default if cal is not None else None,
            )
            controls.append(replace(control, tuning=tuning))
        return replace(spec, controls=tuple(controls), learned_tag=self.tag())


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def fit_threshold(samples: Sequence[tuple[float, bool]], missed: int = 0) -> float:
    """The threshold maximising F1 for (score, positive) samples; `missed` adds false negatives."""
    scores = sorted({s for s, _ in samples})
    cuts = [0.0] + [round((a + b) / 2, 3) for a, b in zip(scores, scores[1:])] + [SUPPRESS]
    best: tuple[float, int, float] | None = None
    best_cut = 0.0
    for cut in cuts:
        tp = sum(1 for s, pos in samples if pos and s >= cut)
        fp = sum(1 for s, pos in samples if not pos and s >= cut)
        fn = sum(1 for s, pos in samples if pos and s < cut) + missed
        key = (_f1(tp, fp, fn), -fp, -cut)
        if best is None or key > best:
            best, best_cut = key, cut
    return best_cut


def fit(samples: Iterable[Sample], missed: Mapping[str, int], parts: Iterable[str], min_samples: int) -> LearnedState:
    parts = set(parts)
    samples = list(samples)
    by_label: dict[str, list[tuple[float, bool]]] = {}
    matched: Counter[str] = Counter()
    relabels: Counter[tuple[str, str]] = Counter()
    for s in samples:
        if s.outcome in _POSITIVE:
            matched[s.label] += 1
        if s.outcome == "relabelled" and s.new_label:
            relabels[(s.label, s.new_label)] += 1
        if s.score is None or s.outcome not in (*_POSITIVE, "deleted"):
            continue
        by_label.setdefault(s.label, []).append((float(s.score), s.outcome in _POSITIVE))
    thresholds: dict[str, float] = {}
    if "thresholds" in parts:
        for label, pairs in by_label.items():
            if len(pairs) >= min_samples:
                cut = fit_threshold(pairs, missed.get(label, 0))
                if cut > 0:
                    thresholds[label] = cut
    synonyms: dict[str, str] = {}
    if "synonyms" in parts:
        for (a, b), n in relabels.items():
            if n >= min_samples and n >= SYNONYM_SHARE * matched[a]:
                synonyms[a] = b
    calibration = calib.fit(samples) if "calibration" in parts else None
    return LearnedState(thresholds, synonyms, calibration=calibration)


def relabel_suggestions(pairs: Mapping[tuple[str, str], int], matched: Mapping[str, int]) -> list[str]:
    """Human-readable hint suggestions from relabel counts (most frequent first)."""
    out = []
    for (a, b), n in sorted(pairs.items(), key=lambda kv: -kv[1]):
        share = n / matched[a] if matched.get(a) else 1.0
        out.append(f'"{a}" -> "{b}": {n} of {matched.get(a, n)} matched "{a}" regions ({100 * share:.0f} %): '
                   f'describe "{a}" more narrowly in its hint, or let REVIEW_LEARN=synonyms answer it as "{b}"')
    return out


class Learner:
    """The learned state per project, refitted when the project's ledger revision changes."""

    def __init__(self, ledger: Ledger, parts: Iterable[str], min_samples: int = 10, refit_seconds: float = REFIT_SECONDS,
                 *, few_shot: int = 0, source: ExampleSource | None = None, book: FewShotBook | None = None) -> None:
        self.ledger = ledger
        self.parts = tuple(p for p in parts if p in PARTS)
        self.few_shot = few_shot if source is not None else 0  # examples need Label Studio to read them back
        self.source = source
        self.book = book  # where the plans of a batch find the examples of a model_version
        self.min_samples = min_samples
        self.refit_seconds = refit_seconds
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[int, LearnedState, float]] = {}  # project -> (revision, state, fitted at)

    def state(self, project: int | None) -> LearnedState:
        if (not self.parts and not self.few_shot) or project is None:
            return LearnedState()
        with self._lock:
            cached = self._cache.get(project)
        if cached is not None and time.monotonic() - cached[2] < self.refit_seconds:
            return cached[1]
        try:
            rev = self.ledger.revision(project)
            if cached is not None and cached[0] == rev:
                return cached[1]
            contributions = self.ledger.contributions(project)
        except (redis.RedisError, OSError) as exc:  # Redis away: keep the last state (a flapping model_version would re-predict)
            log.warning("review ledger unavailable, keeping the last learned state for project %s: %s", project, exc)
            return cached[1] if cached is not None else LearnedState()
        missed: Counter[str] = Counter()
        for c in contributions:
            for label, s in c.tally.labels.items():
                missed[label] += s.missed + s.relabelled_in
        state = fit((s for c in contributions for s in c.samples), missed, self.parts, self.min_samples)
        if self.few_shot and self.source is not None:
            ranked = rank(x for c in contributions if (x := candidate(c.annotation_id, c.task, c.tally)) is not None)
            versions = {c.annotation_id: c.updated_at for c in contributions}  # re-read an annotation once it changed
            examples, complete = self.source.choose(ranked, self.few_shot, versions)
            if not complete and cached is not None:
                # Label Studio did not answer for some: keep the last set (a flapping model_version
                # would re-predict), and try again on the next refit
                log.warning("few-shot: keeping the last example set of project %s until Label Studio answers", project)
                examples = cached[1].examples
                rev = -1
            state = replace(state, examples=examples)
            self.remember(state)
        with self._lock:
            self._cache[project] = (rev, state, time.monotonic())
        return state


    def remember(self, state: LearnedState) -> None:
        """Make `state`'s examples findable by the model_version it gives (FewShotBook.attach)."""
        if self.book is not None and state.examples:
            self.book.remember(state.examples)


def project_id(body: Mapping[str, Any]) -> int | None:
    """Label Studio sends "project": "<id>.<created timestamp>" in /setup and /predict."""
    raw = body.get("project")
    if raw is None:
        tasks = body.get("tasks")
        if isinstance(tasks, list) and tasks and isinstance(tasks[0], Mapping):
            raw = tasks[0].get("project")
    try:
        return int(str(raw).split(".", 1)[0])
    except (TypeError, ValueError):
        return None


def learned_state(settings: Settings, project: int | None) -> LearnedState:
    """What the review loop learned for `project`, for a process without a running backend (the
    `prelabel` command), so that it derives the same model_version the server does."""
    if not settings.review_learn and not settings.few_shot_examples:
        return LearnedState()
    from ..labelstudio import CredentialStore, LabelStudioApi
    from ..labelstudio.client import READ_TIMEOUT
    from ..redisconn import JOB
    from .ledger import make_ledger

    ledger = make_ledger(settings.redis_url, settings.redis_prefix, JOB)  # a CLI: it may wait
    source = ExampleSource(LabelStudioApi(CredentialStore.from_settings(settings), timeout=READ_TIMEOUT).get_json)
    return Learner(ledger, settings.review_learn, settings.review_min_samples, few_shot=settings.few_shot_examples,
                   source=source).state(project)
