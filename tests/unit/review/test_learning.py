"""Learning from the ledger: thresholds maximise F1, synonyms need a clear majority, state -> tag."""

from __future__ import annotations

import json

from gemini_ls.detections import ImageMeta, RequestKind
from gemini_ls.gemini.kinds import KINDS
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.plan import plan_requests
from gemini_ls.regions import convert_for
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


LEARN_CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="box" toName="image"><Label value="Yellow"/><Label value="Red"/><Label value="Purple"/>
<Label value="Magenta"/></RectangleLabels>
<Choices name="scene" toName="image"><Choice value="A"/><Choice value="Purple"/><Choice value="Magenta"/></Choices></View>"""


def _predicted(spec, items: list[dict], choices: list[str]) -> tuple[list, list]:
    """Gemini's answer items through the pipeline's own pieces: the plans' label matcher, then the
    region converters' selection (no Label Studio JSON post-processing anywhere)."""
    plans = plan_requests(spec)
    boxes = next(p for p in plans if p.kind is RequestKind.BOXES)
    answer = KINDS[boxes.kind].parse(json.dumps(items), boxes, None, 1)
    results = convert_for(boxes.controls[0], {"image": ImageMeta("image", 100, 100)}, answer).results
    choice = next(p for p in plans if p.kind is RequestKind.CHOICE)
    chosen = KINDS[choice.kind].parse(json.dumps(choices), choice, None, 1).choices
    return [(r["value"]["rectanglelabels"][0], r["score"]) for r in results], list(chosen)


def test_state_applies_to_regions_and_tags_model_version():
    state = LearnedState({"Yellow": SUPPRESS, "Red": 0.7}, {"Purple": "Magenta"})
    def r(label, score):
        return {"label": label, "box_2d": [10, 10, 50, 50], "score": score}
    items = [r("Yellow", 0.99), r("Red", 0.5), r("Red", 0.9), r("Purple", 0.9)]
    spec = parse_label_config(LEARN_CONFIG)
    regions, chosen = _predicted(state.applied(spec), items, ["A"])
    assert regions == [("Red", 0.9), ("Magenta", 0.9)] and chosen == ["A"]
    # a synonym is the matcher's: choices are answered as the wanted label too
    assert _predicted(state.applied(spec), items, ["Purple"])[1] == ["Magenta"]
    # the parsed spec carries nothing learned: everything kept, as Gemini said it
    assert [label for label, _ in _predicted(spec, items, ["A"])[0]] == ["Yellow", "Red", "Red", "Purple"]
    assert LearnedState().applied(spec) is spec and spec.learned_tag is None
    assert state.applied(spec).learned_tag == state.tag()
    assert LearnedState().tag() is None and state.tag() == LearnedState(dict(state.thresholds), dict(state.synonyms)).tag()
    assert state.tag() != LearnedState({"Red": 0.7}).tag()


def test_learned_threshold_is_the_answered_labels_and_beside_model_score_threshold():
    # "Purple" answered and renamed "Magenta": Purple's floor applies, not Magenta's
    state = LearnedState({"Purple": 0.8, "Magenta": 0.95}, {"Purple": "Magenta"})
    items = [{"label": "Purple", "box_2d": [0, 0, 50, 50], "score": 0.9},
             {"label": "Magenta", "box_2d": [50, 50, 90, 90], "score": 0.9}]
    regions, _ = _predicted(state.applied(parse_label_config(LEARN_CONFIG)), items, [])
    assert regions == [("Magenta", 0.9)]
    # the higher of model_score_threshold and the learned floor decides
    strict = parse_label_config(LEARN_CONFIG.replace('toName="image">', 'toName="image" model_score_threshold="0.95">', 1))
    assert _predicted(state.applied(strict), items, [])[0] == []


def test_a_synonym_to_a_label_the_control_lacks_is_left_out():
    spec = LearnedState(synonyms={"Purple": "Cyan", "Red": "Magenta"}).applied(parse_label_config(LEARN_CONFIG))
    box = next(c for c in spec.controls if c.name == "box")
    assert box.tuning.synonyms == (("Red", "Magenta"),)


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
