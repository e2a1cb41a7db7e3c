"""Region and task scores: the review loop's calibration applied to a task's finished regions.

A region whose control carries a learned calibration (labelconfig.LabelTuning.score_map, from
review/calibration.py) gets the calibrated probability that annotators keep it as its `score`, and
keeps Gemini's confidence under CONFIDENCE_KEY (what the ledger learns from next time).

The task `score` orders Label Studio's Data Manager, which sorts ascending: the tasks most likely
to need a fix must come first. For calibrated regions it is the PRODUCT of their keep-probabilities,
the probability that the annotator keeps every region (regions treated as independent): one
doubtful region makes the task doubtful (a mean would dilute it among confident ones), and a task
with many regions has more chances to need a fix (a minimum would not see that). Uncalibrated
tasks keep the mean of Gemini's confidences, as before calibration existed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..labelconfig import ProjectSpec
from .result import CONFIDENCE_KEY

DECIMALS = 4


def _label(region: Mapping[str, Any]) -> str | None:
    labels = (region.get("value") or {}).get(str(region.get("type")))
    return labels[0] if isinstance(labels, list) and labels and isinstance(labels[0], str) else None


def calibrated(spec: ProjectSpec, results: Sequence[dict]) -> list[dict]:
    """The regions with calibrated scores where their control has a calibration (new dicts; the
    rest as they were)."""
    controls = {c.name: c for c in spec.controls}
    out = []
    for region in results:
        control = controls.get(str(region.get("from_name")))
        score = region.get("score")
        label = _label(region)
        score_map = control.tuning.score_map(label) if control is not None and label is not None else None
        if score_map is None or not isinstance(score, (int, float)) or CONFIDENCE_KEY in region:
            out.append(region)
            continue
        out.append({**region, "score": round(score_map(float(score)), DECIMALS), CONFIDENCE_KEY: float(score)})
    return out


def task_score(results: Sequence[Mapping[str, Any]]) -> float | None:
    """See the module docstring: product of calibrated scores, else the mean of the scores."""
    scores = [float(r["score"]) for r in results if isinstance(r.get("score"), (int, float))]
    if not scores:
        return None
    if any(CONFIDENCE_KEY in r for r in results):
        return round(math.prod(scores), DECIMALS)
    return round(sum(scores) / len(scores), DECIMALS)
