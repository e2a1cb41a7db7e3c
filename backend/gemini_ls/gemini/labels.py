"""Map the free-text labels Gemini answers with onto the project's own label values.

Gemini is asked to use the exact names, but it does not always: it changes case, pluralises,
and, following its own habit of naming duplicates "according to their unique characteristic",
answers "cat 2", "red square (left)" or "car on the left". `LabelMatcher.match` tries, in order:

1. exact:       the raw text equals a label value;
2. normalised:  equal after case-folding, collapsing whitespace and stripping quotes/punctuation
                at the ends ("  Cat. " -> "cat");
3. hint:        equal (normalised) to a label's hint, the hover text the prompt described it with;
4. fuzzy, in sub-steps, each accepted only when exactly one label qualifies:
   a. reduced:  remove bracketed parts ("(left)", "[2]"), ordinals and numbers ("cat 2",
                "cat #2", "2nd cat", "second cat"), trailing ", left"/" - left" qualifiers,
                and reduce a plural last word to its singular ("cats", "boxes", "puppies"),
                on both sides, then compare values and hints;
   b. contains: the raw words contain a label's words as a contiguous run ("red square" ->
                "square", "car on the left" -> "car"); when several labels are contained the
                longest wins only if it covers the others ("white police car" with labels
                "car" and "police car" -> "police car"), otherwise it is ambiguous;
   c. similar:  difflib's SequenceMatcher ratio of the reduced forms >= FUZZY_THRESHOLD (0.85,
                catches one-letter typos like "bicyle"), and the best score is unique.

Anything else returns None: the caller drops the item and counts it. A label is never guessed
when two labels fit equally well.

Last, the review loop's learned synonyms (labelconfig.LabelTuning, on the plan): a label annotators
relabel to another nearly every time is answered as that one ("we said A, annotators say B").
`answered` is the label before that step (the learned thresholds are per answered label).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from ..labelconfig import LabelSpec

FUZZY_THRESHOLD = 0.85

_ORDINAL_WORDS = (
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|"
    "another|other|last|next|one|two|three|four|five|six|seven|eight|nine|ten"
)
_BRACKETS = re.compile(r"\([^)]*\)|\[[^\]]*\]|\{[^}]*\}")
_LEADING_ORDINAL = re.compile(rf"^(?:(?:the|a|an)\s+)?(?:\d+(?:st|nd|rd|th)?|{_ORDINAL_WORDS})\s+", re.I)
_TRAILING_NUMBER = re.compile(r"(?:\s*(?:#|no\.?|number|nr\.?)?\s*\d+[a-z]?|_\d+)$", re.I)
_TRAILING_QUALIFIER = re.compile(r"\s*(?:,|;|:|\s-\s|\s–\s).*$")
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.I)
_WORD = re.compile(r"\w+", re.UNICODE)


def normalise(text: str) -> str:
    """Case-fold, NFKC, collapse whitespace, strip quotes and punctuation at the ends."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    return text.strip(" \t\"'`“”‘’.,;:!?*_")


def singular(word: str) -> str:
    """A plural English noun reduced to its singular by suffix rules (good enough for labels).

    "ss", "us", "is" endings stay ("glass", "bus", "iris"), so a singular is never mangled.
    """
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses", "zes", "uses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def reduce_label(text: str) -> str:
    """The normalised text without Gemini's duplicate-distinguishing decorations, singular."""
    text = normalise(text)
    text = _BRACKETS.sub(" ", text)
    text = _TRAILING_QUALIFIER.sub("", text)
    for _ in range(2):  # "the 2nd cat #3": strip both ends, twice at most
        text = _LEADING_ORDINAL.sub("", text.strip())
        text = _TRAILING_NUMBER.sub("", text.strip())
    text = _LEADING_ARTICLE.sub("", normalise(text))
    words = text.split()
    if words:
        words[-1] = singular(words[-1])
    return " ".join(words)


def _words(text: str) -> tuple[str, ...]:
    return tuple(singular(w) for w in _WORD.findall(normalise(text)))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


@dataclass(frozen=True)
class _Form:
    """One way a label can be named: its value or its hint, pre-reduced for comparison."""

    value: str
    normal: str
    reduced: str
    words: tuple[str, ...]


def _unique(values: list[str]) -> str | None:
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else None


class LabelMatcher:
    """Maps raw label text to one of `labels`' values, or None (see the module docstring)."""

    def __init__(self, labels: tuple[LabelSpec, ...], *, fuzzy_threshold: float = FUZZY_THRESHOLD,
                 synonyms: Iterable[tuple[str, str]] = ()):
        self.labels = tuple(labels)
        self.synonyms = dict(synonyms)  # learned: answered label -> the label annotators want
        self.fuzzy_threshold = fuzzy_threshold
        self._values = {label.value for label in self.labels}
        self._names: list[_Form] = []
        self._hints: list[_Form] = []
        for label in self.labels:
            self._names.append(self._form(label.value, label.value))
            if label.hint and label.hint.strip():
                self._hints.append(self._form(label.value, label.hint))

    @staticmethod
    def _form(value: str, text: str) -> _Form:
        return _Form(value=value, normal=normalise(text), reduced=reduce_label(text), words=_words(reduce_label(text)))

    def match(self, raw: object) -> str | None:
        """The project label `raw` names, after the learned synonyms."""
        return self.renamed(self.answered(raw))

    def renamed(self, label: str | None) -> str | None:
        """`label` (an `answered` one) after the learned synonyms."""
        return self.synonyms.get(label, label) if label is not None else None

    def answered(self, raw: object) -> str | None:
        """The project label `raw` names, before the learned synonyms."""
        if not isinstance(raw, str) or not raw.strip() or not self.labels:
            return None
        if raw in self._values:
            return raw
        normal = normalise(raw)
        if not normal:
            return None
        for forms in (self._names, self._hints):
            hit = _unique([f.value for f in forms if f.normal == normal])
            if hit is not None:
                return hit
            if any(f.normal == normal for f in forms):
                return None  # two labels normalise alike: ambiguous, never guess
        return self._fuzzy(raw)

    def _fuzzy(self, raw: str) -> str | None:
        reduced = reduce_label(raw)
        forms = self._names + self._hints
        if reduced:
            hits = [f.value for f in forms if f.reduced and f.reduced == reduced]
            if hits:
                return _unique(hits)
        words = _words(reduced or raw)
        contained = [f for f in forms if f.words and _contains(words, f.words)]
        if contained:
            return self._longest_covering(contained)
        return self._similar(reduced or normalise(raw), forms)

    @staticmethod
    def _longest_covering(contained: list[_Form]) -> str | None:
        longest = max(len(f.words) for f in contained)
        best = [f for f in contained if len(f.words) == longest]
        value = _unique([f.value for f in best])
        if value is None:
            return None
        # Every shorter contained label must lie inside the longest one ("car" in "police car").
        if all(_contains(best[0].words, f.words) or f.value == value for f in contained):
            return value
        return None

    def _similar(self, text: str, forms: list[_Form]) -> str | None:
        scored: dict[str, float] = {}
        for f in forms:
            if not f.reduced:
                continue
            ratio = difflib.SequenceMatcher(None, text, f.reduced).ratio()
            scored[f.value] = max(scored.get(f.value, 0.0), ratio)
        ranked = sorted(scored.items(), key=lambda kv: kv[1], reverse=True)
        if not ranked or ranked[0][1] < self.fuzzy_threshold:
            return None
        if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
            return None
        return ranked[0][0]
