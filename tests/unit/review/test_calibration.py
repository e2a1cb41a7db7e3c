"""The calibration fit (review/calibration.py): monotone, identity below its threshold, shrunk per
label toward the project-wide map; serialisable; part of the learned state and model_version."""

from __future__ import annotations

import random

from gemini_ls.labelconfig import parse_label_config
from gemini_ls.regions.result import CONFIDENCE_KEY
from gemini_ls.regions.scores import calibrated, task_score
from gemini_ls.review import calibration as cal
from gemini_ls.review.learning import LearnedState, fit
from gemini_ls.review.ledger import Contribution, Sample, contribution
from gemini_ls.review.match import match_regions
from gemini_ls.review.stats import Tally
from gemini_ls.scoremap import ScoreMap

CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="rect" toName="image"><Label value="Red"/><Label value="Blue"/></RectangleLabels></View>"""


def history(n: int, label: str = "Red", seed: int = 1, truth=lambda c: c - 0.3) -> list[Sample]:
    """n reviewed regions whose confidence overstates the keep-probability `truth(confidence)`."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        c = round(rng.uniform(0.4, 1.0), 2)
        out.append(Sample(label, "accepted" if rng.random() < truth(c) else "deleted", c))
    return out


def test_isotonic_is_monotone_and_pools_violators():
    xs, ys = cal.isotonic([0.1, 0.2, 0.3, 0.4], [True, False, True, True])
    assert list(xs) == [0.1, 0.2, 0.3, 0.4] and list(ys) == [0.5, 0.5, 1.0, 1.0]
    rng = random.Random(3)
    x = [rng.random() for _ in range(500)]
    _, fitted = cal.isotonic(x, [rng.random() < v for v in x])
    assert all(a <= b for a, b in zip(fitted, fitted[1:]))


def test_fit_is_monotone_and_corrects_overconfidence():
    c = cal.fit(history(600))
    assert c is not None and c.reviews == 600
    for m in (c.default, c.map_for("Red")):
        assert all(a <= b for a, b in zip(m.ys, m.ys[1:]))
        assert all(0.0 <= y <= 1.0 for y in m.ys)
    assert abs(c.probability("Red", 0.9) - 0.6) < 0.12  # 0.9 was kept about six times in ten
    assert abs(c.probability("Red", 0.6) - 0.3) < 0.12
    samples = history(2000, seed=5)
    raw = [s.score for s in samples]
    kept = [s.outcome == "accepted" for s in samples]
    assert cal.ece(raw, kept) > 0.2 and cal.ece([c.probability("Red", r) for r in raw], kept) < 0.05


def test_identity_below_the_threshold():
    assert cal.fit(history(cal.MIN_REVIEWS - 1)) is None
    assert cal.fit(history(cal.MIN_REVIEWS)) is not None
    # regions without confidence or never judged (missed) do not count as reviews
    few = history(cal.MIN_REVIEWS - 1) + [Sample("Red", "accepted", None)] * 20
    assert cal.fit(few) is None
    state = fit(history(cal.MIN_REVIEWS - 1), {}, ("calibration",), min_samples=10)
    assert state.calibration is None and state.empty and state.tag() is None
    spec = state.applied(parse_label_config(CONFIG))
    region = _region("Red", 0.9)
    assert calibrated(spec, [region]) == [region]


def test_a_label_with_few_reviews_is_shrunk_toward_the_project_map():
    # Red: 400 reviews, kept at confidence - 0.3; Blue: always kept, with 12 or 400 reviews
    red = history(400)
    always = lambda c: 2.0  # noqa: E731
    few = cal.fit(red + history(12, "Blue", seed=2, truth=always))
    many = cal.fit(red + history(400, "Blue", seed=2, truth=always))
    assert few is not None and many is not None
    project_few, blue_few, blue_many = few.default(0.6), few.probability("Blue", 0.6), many.probability("Blue", 0.6)
    assert project_few < blue_few < blue_many  # pulled up by its own reviews, as far as their number allows
    w = 12 / (12 + cal.SHRINK)
    assert abs(blue_few - (w * 1.0 + (1 - w) * project_few)) < 0.03
    assert blue_many > 0.9
    # below MIN_LABEL a label has no map of its own: the project-wide one
    tiny = cal.fit(red + history(cal.MIN_LABEL - 1, "Blue", seed=2, truth=always))
    assert tiny is not None and tiny.map_for("Blue") is tiny.default


def test_serialisable_and_in_the_learned_state_and_model_version():
    c = cal.fit(history(300))
    assert c is not None
    again = cal.Calibration.from_dict(c.as_dict())
    assert again == c and again.digest() == c.digest()
    assert cal.fit(history(300)) == c  # deterministic
    thresholds_only = LearnedState(thresholds={"Red": 0.5})
    with_cal = LearnedState(thresholds={"Red": 0.5}, calibration=c)
    other = LearnedState(thresholds={"Red": 0.5}, calibration=cal.fit(history(300, seed=9)))
    assert len({thresholds_only.tag(), with_cal.tag(), other.tag()}) == 3
    assert with_cal.as_dict()["calibration"] == c.as_dict()
    spec = with_cal.applied(parse_label_config(CONFIG))
    assert spec.learned_tag == with_cal.tag()
    tuning = spec.controls[0].tuning
    assert tuning.score_map("Red") == c.map_for("Red") and tuning.score_map("Blue") == c.default


def _region(label: str, score: float, rid: str = "a") -> dict:
    return {"id": rid, "from_name": "rect", "to_name": "image", "type": "rectanglelabels", "original_width": 100,
            "original_height": 100, "score": score,
            "value": {"x": 10, "y": 10, "width": 20, "height": 30, "rotation": 0, "rectanglelabels": [label]}}


def test_region_and_task_scores():
    m = ScoreMap((0.0, 0.5, 1.0), (0.0, 0.2, 0.8))
    assert m(0.75) == 0.5 and m(-1) == 0.0 and m(2) == 0.8
    c = cal.Calibration(m, (("Blue", ScoreMap((0.0, 1.0), (0.5, 0.5))),), 100)
    spec = LearnedState(calibration=c).applied(parse_label_config(CONFIG))
    out = calibrated(spec, [_region("Red", 0.75, "a"), _region("Blue", 0.99, "b")])
    assert [r["score"] for r in out] == [0.5, 0.5] and [r[CONFIDENCE_KEY] for r in out] == [0.75, 0.99]
    assert calibrated(spec, out) == out  # applied once
    assert task_score(out) == 0.25  # the probability that every region is kept
    assert task_score([_region("Red", 0.8), _region("Red", 0.6)]) == 0.7  # uncalibrated: the mean, as before
    assert task_score([]) is None


def test_the_ledger_learns_from_geminis_confidence_not_the_calibrated_score():
    region = {**_region("Red", 0.31), CONFIDENCE_KEY: 0.93}
    (o,) = match_regions([region], [])
    assert o.outcome.value == "deleted" and o.score == 0.93 and o.shown == 0.31 and o.size == 0.06
    c = contribution(7, 1, 2, "v", match_regions([region], [region]))
    assert c.samples == (Sample("Red", "accepted", 0.93, None, 0.06),)
    assert Contribution.from_json(c.to_json()) == c
    old = Contribution(8, 1, 2, "v", Tally()).to_json().replace('"samples": []', '"samples": [["Red", "deleted", 0.5, null]]')
    assert Contribution.from_json(old).samples == (Sample("Red", "deleted", 0.5),)  # stored before `size` existed


def test_cross_fitted_ece_for_the_report():
    groups = [history(5, seed=s) for s in range(120)]
    triples = cal.cross_fitted(groups)
    assert len(triples) == 600
    raw = [t[0] for t in triples]
    after = [t[1] for t in triples]
    kept = [t[2] for t in triples]
    assert cal.ece(after, kept) < cal.ece(raw, kept) / 2
    assert cal.cross_fitted(groups[:5]) == [(r, r, k) for r, _, k in cal.cross_fitted(groups[:5])]  # too few: identity
