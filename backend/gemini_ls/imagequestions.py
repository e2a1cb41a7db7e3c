"""Controls that ask one question about the whole image: a `TextArea` bound to a `<Text>` question
(Label Studio's visual-question-answering template), `Number` and `Rating` on an image (a count, a
quality score) and `Taxonomy` (hierarchical classification).

Read from the SDK's `LabelInterface` into plain frozen values that labelconfig.py puts on the
`ControlSpec`; nothing here knows Gemini. Per-region Number/Rating (perRegion="true") are not these:
they are answered with each region (labelconfig.AttributeSpec).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

# Label Studio's separator of a taxonomy path when it is offered to the model as one option
# ("Animals / Cat"); the result carries the path as a list again (regions/taxonomy.py).
PATH_SEPARATOR = " / "
TAXONOMY_MAX_OPTIONS = 500  # a bigger tree is not a prompt: the control is refused with the reason


@dataclass(frozen=True)
class TextQuestion:
    """A TextArea's question: the `<Text>` object it answers (the result's to_name) and the task data
    key that object shows (`value="$q1"` -> "q1"); the question itself is read per task."""

    text_name: str
    value_key: str


@dataclass(frozen=True)
class Scale:
    """The bounds of a Number (min/max, either may be open) or a Rating (1..maxRating, whole)."""

    minimum: float | None
    maximum: float | None
    whole: bool = False

    def accepts(self, value: float) -> bool:
        if not math.isfinite(value) or (self.whole and value != int(value)):
            return False
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)

    def describe(self) -> str:
        """The range in words, for the prompt ("from 1 to 5")."""
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f" from {lo:g} to {hi:g}"
        if lo is not None:
            return f" of at least {lo:g}"
        return f" of at most {hi:g}" if hi is not None else ""


def _bound(attr: dict, key: str) -> float | None:
    try:
        value = float(attr[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def scale_of(tag: str, attr: dict) -> Scale | None:
    """Number: its min/max (an unreadable bound is open, as in Label Studio's editor); Rating: 1 to
    maxRating (default 5), whole stars. None for other tags."""
    if tag == "Number":
        return Scale(_bound(attr, "min"), _bound(attr, "max"))
    if tag == "Rating":
        return Scale(1.0, float(max(1, int(_bound(attr, "maxRating") or 5))), whole=True)
    return None


def question_of(control: Any, interface: Any) -> TextQuestion | None:
    """The `<Text>` question a TextArea answers (its first toName that is a Text object showing a task
    field), None when it is bound to no such Text (an image caption, or nothing this backend fills). A
    Text whose field holds a URL (`valueType="url"`) is not a question this backend reads."""
    if control.tag != "TextArea":
        return None
    texts = {o.name: o for o in interface.objects if o.tag == "Text"}
    for name in control.to_name or ():
        obj = texts.get(name)
        if obj is not None and (obj.value or "").startswith("$") and (obj.attr or {}).get("valueType") != "url":
            return TextQuestion(text_name=name, value_key=obj.value[1:])
    return None


def _walk(node: ElementTree.Element, prefix: tuple[str, ...], leafs_only: bool,
          out: list[tuple[tuple[str, ...], str | None]]) -> None:
    for child in node:
        if child.tag != "Choice":
            continue
        value = child.get("alias") or child.get("value")
        if not value:
            continue
        path = (*prefix, value)
        children = [c for c in child if c.tag == "Choice"]
        if not (leafs_only and children):
            out.append((path, child.get("hint")))
        _walk(child, path, leafs_only, out)


def taxonomy_paths(config: str, name: str) -> tuple[tuple[tuple[str, ...], str | None], ...]:
    """Every selectable node of a Taxonomy as (path from the root, hint), in the tree's order: every
    node, or only the leaves with leafsOnly="true" (what the editor lets an annotator pick)."""
    try:
        root = ElementTree.fromstring(config)
    except ElementTree.ParseError:
        return ()
    tag = next((t for t in root.iter("Taxonomy") if t.get("name") == name), None)
    if tag is None:
        return ()
    out: list[tuple[tuple[str, ...], str | None]] = []
    _walk(tag, (), str(tag.get("leafsOnly", "")).lower() == "true", out)
    return tuple(out)


Option = tuple[str, "str | None", tuple[str, ...]]  # (the path joined, hint, path): a labelconfig.LabelSpec


def taxonomy_options(config: str, name: str, attr: dict) -> tuple[Option, ...] | str:
    """A Taxonomy's options, each node offered as its whole path; or why it cannot be asked: options
    loaded from an API at labelling time, none, or more than one prompt can list."""
    if attr.get("apiUrl"):
        return "its options come from apiUrl at labelling time, not from the config"
    paths = taxonomy_paths(config, name)
    if not paths:
        return "has no <Choice> options"
    if len(paths) > TAXONOMY_MAX_OPTIONS:
        return f"has {len(paths)} nodes, above the {TAXONOMY_MAX_OPTIONS} one prompt can list"
    return tuple((PATH_SEPARATOR.join(path), hint, path) for path, hint in paths)


def taxonomy_multiple(tag: str, attr: dict) -> bool:
    """Label Studio's Taxonomy takes several selections unless maxUsages="1"."""
    return tag == "Taxonomy" and str(attr.get("maxUsages", "")).strip() != "1"


def with_question(tag: str, name: str, attr: dict) -> dict:
    """A Number/Rating's attributes with what it asks about the whole image as its model_prompt: the
    model_prompt, else its hint, else its name ("circles": count them; "quality": a quality score).
    Other tags' attributes as they are."""
    if tag not in ("Number", "Rating"):
        return attr
    asked = next((" ".join(v.split()) for k in ("model_prompt", "hint", "placeholder")
                  if isinstance(v := attr.get(k), str) and v.strip()), name.replace("_", " "))
    return {**attr, "model_prompt": asked}
