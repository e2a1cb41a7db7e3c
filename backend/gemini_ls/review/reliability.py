"""Calibration as `gemini-ls report` shows it: expected calibration error and a reliability diagram.

Before = Gemini's own confidence; after = the calibrated score of the same regions. In the report
the "after" score of a region is cross-fitted (calibration.cross_fitted: the map fitted on the
other folds of annotations), so it says what calibration does on reviews it has not seen rather
than how well a map fits its own training data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .calibration import MIN_REVIEWS, cross_fitted, ece, reliability
from .ledger import Sample


def calibration_line(groups: Sequence[Sequence[Sample]], min_reviews: int = MIN_REVIEWS) -> tuple[str, list[tuple[float, float, bool]]]:
    """The report's ECE line and the (raw, calibrated, kept) triples behind it."""
    triples = cross_fitted(groups, min_reviews=min_reviews)
    if not triples:
        return "calibration: no reviewed region with a confidence", triples
    raw = [t[0] for t in triples]
    cal = [t[1] for t in triples]
    kept = [t[2] for t in triples]
    before, after = ece(raw, kept), ece(cal, kept)
    if len(triples) < min_reviews:
        return (f"calibration: {len(triples)} reviewed regions, fewer than {min_reviews} (identity); "
                f"expected calibration error of Gemini's confidence {before:.3f}"), triples
    return (f"calibration: {len(triples)} reviewed regions ({100 * sum(kept) / len(kept):.1f} % kept); expected "
            f"calibration error {before:.3f} before (Gemini's confidence) -> {after:.3f} after (calibrated, 5-fold by "
            "annotation)"), triples


def render_reliability(raw: Sequence[float], calibrated: Sequence[float], kept: Sequence[bool], path: str,
                       title: str) -> None:
    """Share kept against predicted probability per bin, before and after, over the diagonal; the
    marker area is the number of regions in the bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    ax.plot([0, 1], [0, 1], color="#9e9e9e", linestyle="--", linewidth=1, label="perfectly calibrated")
    for probs, colour, name in ((raw, "#e53935", "Gemini's confidence"), (calibrated, "#1e88e5", "calibrated score")):
        points = reliability(probs, kept)
        err = ece(probs, kept)
        xs, ys, ns = _columns(points)
        ax.plot(xs, ys, color=colour, marker="o", linewidth=1.5,
                label=f"{name} (ECE {'-' if err is None else f'{err:.3f}'})")
        ax.scatter(xs, ys, s=[8 + 200 * n / max(1, len(kept)) for n in ns], color=colour, alpha=0.35)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("share of regions annotators kept or adjusted")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _columns(points: Iterable[tuple[float, float, int]]) -> tuple[list[float], list[float], list[int]]:
    xs, ys, ns = [], [], []
    for x, y, n in points:
        xs.append(x)
        ys.append(y)
        ns.append(n)
    return xs, ys, ns
