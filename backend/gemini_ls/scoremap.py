"""A calibration map as a plain value: shared by the label config's learned tuning (labelconfig.py)
and the review loop that fits it (review/calibration.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreMap:
    """A monotone map of Gemini's raw confidence (0-1) to the probability that annotators keep or only
    adjust the region: piecewise linear through (xs, ys), flat beyond the ends. Fitted by the review
    loop's calibration (review/calibration.py), applied where a task's regions are finished (predict.py)."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __call__(self, raw: float) -> float:
        if not self.xs:
            return raw
        if raw <= self.xs[0]:
            return self.ys[0]
        if raw >= self.xs[-1]:
            return self.ys[-1]
        for i in range(1, len(self.xs)):
            if raw <= self.xs[i]:
                x0, x1, y0, y1 = self.xs[i - 1], self.xs[i], self.ys[i - 1], self.ys[i]
                return y0 if x1 == x0 else y0 + (y1 - y0) * (raw - x0) / (x1 - x0)
        return self.ys[-1]
