"""`gemini-ls report`: the review numbers computed straight from Label Studio's data.

Every annotated task of the project that holds a prediction of ours is read through
labelstudio/ (annotations.py `annotated_tasks`, paged), each annotation is matched against our prediction exactly as the webhook
does (same choice of prediction, same matcher, same tally), and the per-label numbers are printed
as a table (Markdown pipes), JSON or CSV, optionally with a PNG chart. No webhook needed: this is
also how to check the webhook-fed ledger.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .learning import relabel_suggestions
from .ledger import Sample, contribution
from .match import match_regions
from .stats import LabelStats, Tally, tally
from .webhook import our_prediction

COLUMNS = ("label", "predicted", "accepted", "adjusted", "relabelled", "deleted", "missed", "precision", "recall", "mean IoU")


@dataclass(frozen=True)
class Reviewed:
    """One annotation and the prediction of ours it is compared with."""

    task_id: int
    annotation: Mapping[str, Any]
    prediction: Mapping[str, Any]

    @property
    def model_version(self) -> str:
        return str(self.prediction.get("model_version"))


def parse_since(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _when(annotation: Mapping[str, Any]) -> datetime | None:
    raw = annotation.get("updated_at") or annotation.get("created_at")
    return parse_since(str(raw)) if raw else None


def reviewed_items(tasks: Any, since: datetime | None = None) -> Iterator[Reviewed]:
    """Annotations (not skipped, not before `since`) of tasks holding a prediction of ours."""
    for task in tasks:
        predictions = list(task.get("predictions") or ())
        for annotation in task.get("annotations") or ():
            if annotation.get("was_cancelled"):
                continue
            if since is not None and (_when(annotation) or since) < since:
                continue
            pred = our_prediction(predictions, annotation.get("parent_prediction"))
            if pred is not None:
                yield Reviewed(int(task["id"]), annotation, pred)


@dataclass(frozen=True)
class Summary:
    tally: Tally
    relabels: Mapping[tuple[str, str], int]  # (we said, annotators said) -> regions


def summaries(items: Iterable[Reviewed], model_version: str | None = None) -> dict[str, Summary]:
    """Tally and relabel counts per model_version (only `model_version` when given), newest first."""
    out: dict[str, Tally] = {}
    pairs: dict[str, Counter[tuple[str, str]]] = {}
    newest: dict[str, int] = {}
    for item in items:
        v = item.model_version
        if model_version is not None and v != model_version:
            continue
        outcomes = match_regions(item.prediction.get("result") or [], item.annotation.get("result") or [])
        out[v] = out.get(v, Tally()).plus(tally(outcomes))
        pairs.setdefault(v, Counter()).update((o.label, o.new_label) for o in outcomes if o.new_label is not None)
        newest[v] = max(newest.get(v, 0), int(item.prediction.get("id") or 0))
    return {v: Summary(out[v], dict(pairs[v])) for v in sorted(out, key=lambda v: -newest[v])}


def sample_groups(items: Iterable[Reviewed], model_version: str | None = None) -> list[tuple[Sample, ...]]:
    """Per annotation, its regions as the ledger records them (the calibration's input)."""
    return [contribution(0, 0, item.task_id, item.model_version,
                         match_regions(item.prediction.get("result") or [], item.annotation.get("result") or [])).samples
            for item in items if model_version is None or item.model_version == model_version]


def tallies(items: Iterable[Reviewed], model_version: str | None = None) -> dict[str, Tally]:
    return {v: s.tally for v, s in summaries(items, model_version).items()}


def suggestions(summary: Summary) -> str:
    """Relabel statistics as suggested hint changes, one line each."""
    matched = {label: s.accepted + s.adjusted + s.relabelled for label, s in summary.tally.labels.items()}
    lines = relabel_suggestions(summary.relabels, matched)
    return "\n".join(f"- relabelled {line}" for line in lines)


# ----- rendering ---------------------------------------------------------------------------------


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def rows(t: Tally) -> list[tuple[str, LabelStats]]:
    return [*sorted(t.labels.items()), ("all", t.total())]


def _row_values(label: str, s: LabelStats) -> list[str]:
    return [label, *(str(x) for x in (s.predicted, s.accepted, s.adjusted, s.relabelled, s.deleted, s.missed)),
            _fmt(s.precision), _fmt(s.recall), _fmt(s.mean_iou)]


def deletion_rate(s: LabelStats) -> float | None:
    return s.deleted / s.predicted if s.predicted else None


def render_table(by_version: Mapping[str, Tally], extra: Mapping[str, str] | None = None) -> str:
    out = []
    for version, t in by_version.items():
        total = t.total()
        rate = deletion_rate(total)
        out.append(f"model_version {version}: {t.annotations} annotations, deletion rate "
                   f"{'-' if rate is None else f'{100 * rate:.1f} %'}")
        if extra and version in extra:
            out.append(extra[version])
        out.append("")
        out.append("| " + " | ".join(COLUMNS) + " |")
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|")
        for label, s in rows(t):
            values = _row_values(label, s)
            if label == "all":
                values = [f"**{v}**" for v in values]
            out.append("| " + " | ".join(values) + " |")
        out.append("")
    return "\n".join(out) if out else "no annotated task holds a prediction of ours"


def render_json(by_version: Mapping[str, Tally], project: int) -> str:
    body = {
        "project": project,
        "model_versions": {
            v: {"annotations": t.annotations, "deletion_rate": deletion_rate(t.total()),
                "labels": {label: s.as_dict() for label, s in rows(t)}}
            for v, t in by_version.items()
        },
    }
    return json.dumps(body, indent=2)


def render_csv(by_version: Mapping[str, Tally]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model_version", *COLUMNS])
    for version, t in by_version.items():
        for label, s in rows(t):
            w.writerow([version, *_row_values(label, s)])
    return buf.getvalue()


def render_chart(by_version: Mapping[str, Tally], path: str, title: str) -> None:
    """Stacked bars per label (accepted / adjusted / relabelled / deleted, missed beside them) and
    precision / recall per label, one panel per model_version (newest three)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions = list(by_version)[:3]
    fig, axes = plt.subplots(len(versions) or 1, 1, figsize=(10, 3.6 * max(1, len(versions))), squeeze=False)
    colours = {"accepted": "#2e7d32", "adjusted": "#9ccc65", "relabelled": "#ffb300", "deleted": "#e53935", "missed": "#5e35b1"}
    for ax, version in zip(axes[:, 0], versions):
        t = by_version[version]
        labels = sorted(t.labels)
        stats = [t.labels[x] for x in labels]
        ys = range(len(labels))
        left = [0.0] * len(labels)
        for field in ("accepted", "adjusted", "relabelled", "deleted"):
            vals = [getattr(s, field) for s in stats]
            ax.barh([y + 0.2 for y in ys], vals, 0.4, left=left, color=colours[field], label=field)
            left = [a + b for a, b in zip(left, vals)]
        ax.barh([y - 0.2 for y in ys], [s.missed for s in stats], 0.4, color=colours["missed"], label="missed")
        for y, s in zip(ys, stats):
            ax.text(max(s.predicted, s.missed) + 0.5, y, f"P {_fmt(s.precision)}  R {_fmt(s.recall)}  IoU {_fmt(s.mean_iou)}",
                    va="center", fontsize=8)
        ax.set_yticks(list(ys), labels)
        ax.invert_yaxis()
        rate = deletion_rate(t.total())
        ax.set_title(f"{version}  ({t.annotations} annotations, deletion rate "
                     f"{'-' if rate is None else f'{100 * rate:.1f} %'})", fontsize=9)
        ax.set_xlabel("regions")
        xmax = max([max(s.predicted, s.missed) for s in stats] or [1])
        ax.set_xlim(0, xmax * 1.6 + 1)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=7, ncol=5, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
