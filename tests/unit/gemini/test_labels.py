"""LabelMatcher: one test per matching rule, plus the cases where it must refuse to guess."""

from __future__ import annotations

import pytest

from gemini_ls.gemini.labels import FUZZY_THRESHOLD, LabelMatcher, normalise, reduce_label, singular
from gemini_ls.labelconfig import LabelSpec

LABELS = (
    LabelSpec("Cat"),
    LabelSpec("dog", hint="a brown puppy"),
    LabelSpec("police car"),
    LabelSpec("bicycle"),
    LabelSpec("glass"),
    LabelSpec("box"),
)


@pytest.fixture
def matcher() -> LabelMatcher:
    return LabelMatcher(LABELS)


def test_exact(matcher):
    assert matcher.match("Cat") == "Cat"
    assert matcher.match("police car") == "police car"


def test_case_and_whitespace_normalised(matcher):
    assert matcher.match("cat") == "Cat"
    assert matcher.match("  CAT ") == "Cat"
    assert matcher.match("Police\n  Car") == "police car"
    assert matcher.match('"dog".') == "dog"


def test_hint_maps_to_its_label(matcher):
    assert matcher.match("a brown puppy") == "dog"
    assert matcher.match("A Brown  Puppy") == "dog"


@pytest.mark.parametrize(
    "raw", ["cat 2", "cat #3", "Cat_2", "cat (left)", "cat [2]", "second cat", "2nd cat", "the cat, on the left", "cat - left"]
)
def test_ordinals_and_qualifiers_stripped(matcher, raw):
    assert matcher.match(raw) == "Cat"


@pytest.mark.parametrize(
    ("raw", "label"), [("cats", "Cat"), ("dogs", "dog"), ("boxes", "box"), ("glasses", "glass"), ("police cars", "police car")]
)
def test_plural_forms(matcher, raw, label):
    assert matcher.match(raw) == label


def test_singular_rules_keep_singulars():
    assert singular("glass") == "glass"
    assert singular("bus") == "bus"
    assert singular("iris") == "iris"
    assert singular("puppies") == "puppy"
    assert singular("buses") == "bus"


@pytest.mark.parametrize(("raw", "label"), [("red cat", "Cat"), ("dog on the left", "dog"), ("small brown dog 2", "dog")])
def test_unique_characteristic_prefix_contained(matcher, raw, label):
    assert matcher.match(raw) == label


def test_longest_contained_label_wins_when_it_covers_the_other():
    m = LabelMatcher((LabelSpec("car"), LabelSpec("police car")))
    assert m.match("white police car") == "police car"
    assert m.match("red car") == "car"


def test_two_unrelated_contained_labels_are_ambiguous(matcher):
    assert matcher.match("cat next to dog") is None


def test_difflib_typo(matcher):
    assert matcher.match("bicycel") == "bicycle"
    assert matcher.match("bicyle") == "bicycle"


def test_difflib_threshold_documented():
    assert FUZZY_THRESHOLD == 0.85
    m = LabelMatcher((LabelSpec("bicycle"),))
    assert m.match("bike") is None  # ratio ~0.55: a synonym is not a typo


def test_difflib_tie_is_refused():
    m = LabelMatcher((LabelSpec("cart"), LabelSpec("card")))
    assert m.match("carx") is None


def test_unknown_labels_are_none(matcher):
    assert matcher.match("zebra") is None
    assert matcher.match("car") is None  # part of "police car", never widened
    assert matcher.match("") is None
    assert matcher.match("   ") is None


@pytest.mark.parametrize("raw", [None, 3, ["cat"], {"label": "cat"}, True])
def test_non_strings_are_none(matcher, raw):
    assert matcher.match(raw) is None


def test_labels_that_normalise_alike_are_never_guessed():
    m = LabelMatcher((LabelSpec("Cat"), LabelSpec("cat")))
    assert m.match("Cat") == "Cat"
    assert m.match("cat") == "cat"
    assert m.match("CAT") is None


def test_no_labels_matches_nothing():
    assert LabelMatcher(()).match("cat") is None


def test_unicode_labels():
    m = LabelMatcher((LabelSpec("猫"), LabelSpec("Straße")))
    assert m.match("猫") == "猫"
    assert m.match("猫 (左)") == "猫"
    assert m.match("STRASSE") == "Straße"  # casefold


def test_normalise_and_reduce():
    assert normalise("  The  CAT. ") == "the cat"
    assert reduce_label("The 2nd red cats (left) #3") == "red cat"
