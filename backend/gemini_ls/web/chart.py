"""The project panel's chart: each label's deletion rate over the model_versions, as the geometry
of a server-rendered SVG (templates/page.html draws it; no script, no image file, and the
Content-Security-Policy needs nothing more than for the HTML)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 420, 180
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 10, 26
# Okabe-Ito: distinguishable with the common colour-vision deficiencies; "all" is drawn black
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
LINES_SHOWN = 7  # the labels with the most predictions (and "all"): more lines are unreadable


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    points: str  # "x,y x,y" for <polyline>
    dots: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    lines: tuple[Line, ...]
    x_ticks: tuple[Tick, ...]  # v1, v2 ... (the versions are listed in the history table)
    y_ticks: tuple[Tick, ...]  # 0%, 50%, 100%
    plot: tuple[float, float, float, float]  # x0, y0, x1, y1 of the plot area
    summary: str  # the text alternative (role="img" aria-label)


def _x(i: int, n: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span / 2 if n == 1 else span * i / (n - 1))


def _y(rate: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - rate)


def deletion_chart(versions: Sequence[str], rows: Sequence[tuple[str, int, Sequence[float | None]]]) -> Chart | None:
    """`rows`: (label, predicted in the newest version, deletion rate per version oldest first);
    None when no rate is known at all."""
    n = len(versions)
    ranked = sorted((r for r in rows if r[0] != "all"), key=lambda r: -r[1])[:LINES_SHOWN]
    chosen = [*ranked, *(r for r in rows if r[0] == "all")]
    lines = []
    for k, (label, _, trend) in enumerate(chosen):
        dots = tuple((round(_x(i, n), 1), round(_y(rate), 1)) for i, rate in enumerate(trend) if rate is not None)
        if dots:
            colour = "#000000" if label == "all" else COLOURS[k % len(COLOURS)]
            lines.append(Line(label, colour, " ".join(f"{x},{y}" for x, y in dots), dots))
    if not lines:
        return None
    x_ticks = tuple(Tick(round(_x(i, n), 1), HEIGHT - 8, f"v{i + 1}") for i in range(n))
    y_ticks = tuple(Tick(LEFT - 6, round(_y(r), 1) + 4, f"{int(r * 100)}%") for r in (0.0, 0.5, 1.0))
    last = {line.label: trend[-1] for line in lines for label, _, trend in chosen if label == line.label}
    summary = "Deletion rate per label over model versions v1 to v{}; newest: {}".format(
        n, "; ".join(f"{label} {'-' if r is None else f'{100 * r:.0f}%'}" for label, r in last.items()))
    return Chart(WIDTH, HEIGHT, tuple(lines), x_ticks, y_ticks, (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM), summary)
