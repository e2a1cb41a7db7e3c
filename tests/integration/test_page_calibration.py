"""The project page's score calibration diagram (web/calibration.py) on the real Flask app and a
real redis-server: the review ledger holds reviewed regions with Gemini's confidence (as the Label
Studio webhook stores them), REVIEW_LEARN=calibration fits on them, and the page and
GET /api/projects/<id>/report show the reliability bins and the ECE before / after that
`gemini-ls report` computes from the same regions."""

from __future__ import annotations

import base64
import random

from gemini_ls.emulator.server import DEFAULT_API_KEY
from gemini_ls.review.calibration import cross_fitted, ece
from gemini_ls.review.ledger import Contribution, RedisLedger, Sample
from gemini_ls.review.stats import LabelStats, Tally
from gemini_ls.server import create_app
from gemini_ls.settings import Settings

XSS = "<img src=x onerror=alert(1)>"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
AUTH = {"Authorization": "Basic " + base64.b64encode(b"lead:pa55-Word").decode()}
VERSION = "gemini-ls-gemini-2.5-flash-p1-0a1b2c3d-l12345678"


def _reviews(redis_url: str, prefix: str, project: int, annotations: int) -> list[tuple[Sample, ...]]:
    """Overconfident Gemini: a region scored s is kept with probability s**2 (two labels, one XSS)."""
    rng = random.Random(project)
    ledger = RedisLedger.from_url(redis_url, prefix)
    groups = []
    for n in range(annotations):
        samples = []
        for label in ("car", XSS, "car"):
            s = round(rng.uniform(0.5, 1.0), 2)
            samples.append(Sample(label, "accepted" if rng.random() < s * s else "deleted", s, size=0.05))
        groups.append(tuple(samples))
        tally = Tally({label: LabelStats(accepted=sum(1 for x in samples if x.label == label and x.outcome == "accepted"),
                                         deleted=sum(1 for x in samples if x.label == label and x.outcome == "deleted"))
                       for label in ("car", XSS)}, 1)
        ledger.replace(project * 1000 + n, Contribution(project * 1000 + n, project, n, VERSION, tally, tuple(samples)))
    return groups


def test_report_and_page_show_the_fitted_calibration_from_redis(emu, redis_url, redis_prefix):
    groups = _reviews(redis_url, redis_prefix, 21, 60)  # 180 reviewed regions: above MIN_REVIEWS
    triples = cross_fitted(groups)
    kept = [t[2] for t in triples]
    app = create_app(Settings(api_key=DEFAULT_API_KEY, base_url=emu.url, redis_url=redis_url, redis_prefix=redis_prefix,
                              review_learn=("calibration",), basic_auth_user="lead", basic_auth_pass="pa55-Word"))
    try:
        client = app.test_client()
        body = client.get("/api/projects/21/report", headers=AUTH).get_json()
        cal = body["calibration"]
        assert cal["reviews"] == 180 and cal["fitted"] and cal["applied"] and cal["min_reviews"] == 50
        assert cal["ece_before"] == round(ece([t[0] for t in triples], kept) or 0, 4)
        assert cal["ece_after"] == round(ece([t[1] for t in triples], kept) or 0, 4) and cal["ece_after"] < cal["ece_before"]
        assert sum(b["regions"] for b in cal["bins_before"]) == 180 == sum(b["regions"] for b in cal["bins_after"])
        assert all(0 <= b["predicted"] <= 1 and 0 <= b["kept"] <= 1 for b in cal["bins_before"] + cal["bins_after"])
        html = client.get("/projects/21", headers={**HTML, **AUTH}).get_data(as_text=True)
        figure = html[html.index('<figure class="calibration">'):]
        figure = figure[:figure.index("</figure>")]
        assert f"ECE {cal['ece_before']:.3f}" in figure and f"ECE {cal['ece_after']:.3f}" in figure
        assert figure.count("<polyline") == 2 and "180 reviewed region(s)" in figure and "not fitted yet" not in figure
        assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
        # a project with few reviews: Gemini's confidence only, and why there is no map yet
        _reviews(redis_url, redis_prefix, 22, 4)
        few = client.get("/api/projects/22/report", headers=AUTH).get_json()["calibration"]
        assert few["reviews"] == 12 and not few["fitted"] and few["ece_after"] is None and few["bins_after"] == []
        text = client.get("/projects/22", headers={**HTML, **AUTH}).get_data(as_text=True)
        assert "not fitted yet: 12 of the 50 reviewed regions" in text
    finally:
        app.extensions["gemini_ls"].runner.shutdown()
