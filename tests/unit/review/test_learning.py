"""Learning from the ledger: thresholds maximise F1, synonyms need a clear majority, state -> tag."""

from __future__ import annotations

from gemini_ls.review.learning import SUPPRESS, LearnedState, Learner, fit, fit_threshold, project_id
from gemini_ls.review.ledger import Contribution, MemoryLedger, Sample
from gemini_ls.review.stats import Tally


def test_fit_threshold_separates_low_confidence_false_positives():
    samples = [(0.95, True)] * 10 + [(0.92, True)] * 5 + [(0.5, False)] * 6 + [(0.35, False)] * 3
    assert fit_threshold(samples) == 0.71  # midway between the best negative and the worst positive
    assert fit_threshold([(0.9, True), (0.8, True)]) == 0.0  # nothing to remove: keep all
    assert fit_threshold([(0.95, False), (0.9, False)]) == SUPPRESS  # annotators delete every one


def test_fit_threshold_trades_off_by_f1():
    # one positive below two negatives: dropping all three costs more F1 than keeping them
    samples = [(0.9, True)] * 8 + [(0.6, False)] * 2 + [(0.5, True)]
    assert fit_threshold(samples) == 0.75
    samples = [(0.9, True)] * 2 + [(0.6, False)] + [(0.5, True)] * 6
    assert fit_threshold(samples) == 0.0


def samples(label, outcome, score, n, new=None):
    return [Sample(label, outcome, score, new)] * n


def test_fit_parts_and_min_samples():
    history = (samples("Yellow", "deleted", 0.95, 12) + samples("Red", "accepted", 0.93, 20) + samples("Red", "deleted", 0.4, 5)
               + samples("Purple", "relabelled", 0.94, 12, "Magenta") + samples("Blue", "relabelled", 0.94, 3, "Red")
               + samples("Blue", "accepted", 0.94, 20) + samples("Green", "deleted", 0.9, 3))
    state = fit(history, {}, ("thresholds", "synonyms"), min_samples=10)
    assert state.thresholds == {"Yellow": SUPPRESS, "Red": 0.665}
    assert state.synonyms == {"Purple": "Magenta"}  # Blue -> Red is 3 of 23: only a suggestion
    assert fit(history, {}, ("thresholds",), 10).synonyms == {}
    assert fit(history, {}, ("synonyms",), 10).thresholds == {}


def test_state_applies_to_regions_and_tags_model_version():
    state = LearnedState({"Yellow": SUPPRESS, "Red": 0.7}, {"Purple": "Magenta"})
    def r(label, score):
        return {"type": "rectanglelabels", "score": score, "value": {"x": 1, "rectanglelabels": [label]}}
    out = state.apply([r("Yellow", 0.99), r("Red", 0.5), r("Red", 0.9), r("Purple", 0.9), {"type": "choices", "value": {"choices": ["A"]}}])
    assert [x["value"].get("rectanglelabels") for x in out] == [["Red"], ["Magenta"], None]
    assert LearnedState().tag() is None and state.tag() == LearnedState(dict(state.thresholds), dict(state.synonyms)).tag()
    assert state.tag() != LearnedState({"Red": 0.7}).tag()


def test_learner_refits_when_the_ledger_changes():
    ledger = MemoryLedger()
    learner = Learner(ledger, ("thresholds",), min_samples=3, refit_seconds=0)
    assert learner.state(1).empty
    ledger.replace(10, Contribution(10, 1, 5, "gemini-ls-x", Tally(), tuple(samples("Yellow", "deleted", 0.9, 3))))
    assert learner.state(1).thresholds == {"Yellow": SUPPRESS}
    # within the refit interval the state stays put, whatever arrives
    slow = Learner(ledger, ("thresholds",), min_samples=3, refit_seconds=3600)
    assert slow.state(1).thresholds == {"Yellow": SUPPRESS}
    ledger.replace(10, None)
    assert slow.state(1).thresholds == {"Yellow": SUPPRESS} and learner.state(1).empty
    assert Learner(ledger, ()).state(1).empty  # learning off


def test_project_id_from_label_studio_bodies():
    assert project_id({"project": "12.1700000000"}) == 12
    assert project_id({"tasks": [{"project": 3}]}) == 3
    assert project_id({}) is None
