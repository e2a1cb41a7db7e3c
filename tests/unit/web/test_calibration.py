"""web/calibration.py: the reliability diagram's numbers (those of `gemini-ls report`) and its SVG
geometry, and the project page drawing it with user content as text."""

from __future__ import annotations

import random

from flask import Flask

from gemini_ls.review.calibration import cross_fitted, ece
from gemini_ls.review.ledger import Contribution, MemoryLedger, Sample
from gemini_ls.review.stats import LabelStats, Tally
from gemini_ls.settings import Settings
from gemini_ls.web import calibration as cv
from gemini_ls.web import views
from gemini_ls.web.data import JobSource
from gemini_ls.web.reports import one_project, project_report

XSS = "<img src=x onerror=alert(1)>"


def _groups(annotations: int, per: int = 4, seed: int = 3) -> list[tuple[Sample, ...]]:
    """Overconfident scores: a region scored s is kept with probability s**3."""
    rng = random.Random(seed)
    out = []
    for _ in range(annotations):
        regions = []
        for _ in range(per):
            s = round(rng.uniform(0.3, 1.0), 2)
            regions.append(Sample(XSS, "accepted" if rng.random() < s ** 3 else "deleted", s))
        regions.append(Sample(XSS, "deleted", None))  # no confidence: not used
        out.append(tuple(regions))
    return out


def test_numbers_are_the_reports_cross_fitted_ones():
    groups = _groups(40)
    view = cv.calibration_view(groups, applied=True)
    triples = cross_fitted(groups)
    kept = [t[2] for t in triples]
    assert view is not None and view.reviews == 160 == len(triples) and view.fitted and view.applied
    assert view.before.ece == round(ece([t[0] for t in triples], kept) or 0, 4)
    assert view.after is not None and view.after.ece == round(ece([t[1] for t in triples], kept) or 0, 4)
    assert view.after.ece < view.before.ece  # overconfidence is what the map removes
    assert sum(b.regions for b in view.before.bins) == 160 == sum(b.regions for b in view.after.bins)
    body = view.to_json()
    assert body["reviews"] == 160 and body["ece_before"] == view.before.ece and len(body["bins_after"]) == len(view.after.bins)
    assert set(body["bins_before"][0]) == {"predicted", "kept", "regions"}


def test_geometry_is_a_square_with_the_diagonal_corner_to_corner_and_points_inside():
    view = cv.calibration_view(_groups(40), applied=False)
    assert view is not None
    d = view.diagram
    x0, y0, x1, y1 = d.plot
    assert x1 - x0 == y1 - y0  # square: the diagonal is at 45 degrees
    assert d.diagonal == (x0, y1, x1, y0)  # (0, 0) bottom left to (1, 1) top right
    for s in d.series:
        assert s.points.count(",") == len(s.markers) == len(s.bins)
        for m, b in zip(s.markers, s.bins):
            assert x0 <= m.x <= x1 and y0 <= m.y <= y1 and cv.R_MIN <= m.r <= cv.R_MAX
            assert abs(m.x - (x0 + (x1 - x0) * b.predicted)) <= 0.1 and abs(m.y - (y1 - (y1 - y0) * b.kept)) <= 0.1
    biggest = max(view.before.bins, key=lambda b: b.regions)
    assert max(view.before.markers, key=lambda m: m.r).title.endswith(f"of {biggest.regions} region(s)")
    assert "Gemini's confidence" in d.summary and "calibrated score" in d.summary


def test_below_the_minimum_only_gemini_s_confidence_is_drawn_and_nothing_without_scores():
    view = cv.calibration_view(_groups(5), applied=True)
    assert view is not None and view.reviews == 20 and not view.fitted and view.after is None
    assert view.to_json()["ece_after"] is None and view.to_json()["bins_after"] == []
    assert cv.calibration_view([(Sample("car", "accepted", None),)], applied=True) is None
    assert cv.calibration_view([], applied=True) is None


def _ledger(annotations: int) -> MemoryLedger:
    ledger = MemoryLedger()
    for n, samples in enumerate(_groups(annotations)):
        tally = Tally({XSS: LabelStats(accepted=sum(s.outcome == "accepted" for s in samples),
                                       deleted=sum(s.outcome == "deleted" for s in samples))}, 1)
        ledger.replace(n, Contribution(n, 4, n, "v1", tally, samples))
    return ledger


def test_report_and_panel_carry_the_ledger_s_calibration():
    ledger = _ledger(40)
    report = project_report(ledger, 4, calibrations=cv.CalibrationCache(ledger, applied=True))
    assert report is not None and report["calibration"]["reviews"] == 160 and report["calibration"]["applied"]
    view = one_project(ledger, 4)
    assert view is not None and view.calibration is not None and not view.calibration.applied
    assert report["calibration"]["ece_after"] == view.calibration.to_json()["ece_after"]


def test_the_cache_recomputes_only_when_the_project_s_reviews_moved():
    ledger = _ledger(40)
    cache = cv.CalibrationCache(ledger, applied=True, size=1)
    first = cache.get(4)
    assert first is not None and cache.get(4) is first  # same revision: the same view, not fitted again
    extra = (Sample("car", "accepted", 0.9),)
    ledger.replace(99, Contribution(99, 4, 99, "v1", Tally({"car": LabelStats(accepted=1)}, 1), extra))
    second = cache.get(4)
    assert second is not None and second is not first and second.reviews == first.reviews + 1
    assert cache.get(5) is None and cache.get(4) is not second  # size 1: project 5 pushed project 4 out


def test_the_page_draws_the_diagram_and_keeps_labels_text():
    app = Flask("t")
    views.register(app, JobSource(Settings(review_learn=("calibration",))), _ledger(40), actions_allowed=False,
                   health=lambda: {"status": "UP"})
    html = app.test_client().get("/projects/4", headers={"Accept": "text/html"}).get_data(as_text=True)
    figure = html[html.index('<figure class="calibration">'):]
    figure = figure[:figure.index("</figure>")]
    assert figure.count("<circle") >= 4 and "stroke-dasharray" in figure and "ECE 0." in figure
    assert "what the predictions carry" in figure and "not fitted yet" not in figure
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    few = Flask("few")
    views.register(few, JobSource(Settings()), _ledger(5), actions_allowed=False, health=lambda: {"status": "UP"})
    text = few.test_client().get("/projects/4", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "not fitted yet: 20 of the 50 reviewed regions" in text
