"""What the annotator drew, from Label Studio's `params.context.result`, as typed prompts.

Label Studio's interactive pre-annotation (the smart tools) sends the regions the annotator just
made, in Label Studio's own result shape (the label-studio-ml-backend SAM2 / Grounding DINO examples
read the same fields):

- a `keypointlabels` region: value x, y in percent of the image, the chosen label in
  value.keypointlabels, `is_positive` false for a negative click (alt-click);
- a `rectanglelabels` region: value x, y, width, height in percent, the label in value.rectanglelabels;
- a `textarea` region: the typed phrase in value.text.

Anything else in the context is ignored; a context with none of them (`{}`, or nothing drawn yet)
is `Interaction.empty`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ContextError(ValueError):
    """The context names something the config cannot use (a clear message for the annotator)."""


@dataclass(frozen=True)
class Click:
    x: float  # percent of the image width
    y: float
    positive: bool


@dataclass(frozen=True)
class DrawnBox:
    x: float  # percent, top-left corner
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Interaction:
    clicks: tuple[Click, ...] = ()
    box: DrawnBox | None = None
    phrase: str | None = None
    label: str | None = None  # the label the annotator chose (keypoint or rectangle)
    image: str | None = None  # the <Image> drawn on (to_name)
    sources: tuple[str, ...] = ()  # the controls the prompts came from (from_name)

    @property
    def empty(self) -> bool:
        return not self.clicks and self.box is None and not self.phrase

    @property
    def kind(self) -> str:
        """"box" (a drawn box wins over clicks drawn with it), "click" or "phrase"."""
        if self.box is not None:
            return "box"
        return "click" if self.clicks else "phrase"


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ContextError(f"interactive context: {what} must be a number, got {value!r}")
    return min(max(float(value), 0.0), 100.0)


def _label(value: Mapping, key: str) -> str | None:
    labels = value.get(key)
    if isinstance(labels, list) and labels and isinstance(labels[0], str) and labels[0].strip():
        return labels[0]
    return None


def parse_context(context: Mapping[str, Any] | None) -> Interaction:
    """The annotator's prompts; raises ContextError for a malformed one (never for an empty one)."""
    regions = (context or {}).get("result")
    if regions is None:
        return Interaction()
    if not isinstance(regions, list):
        raise ContextError("interactive context: 'result' must be a list of regions")
    clicks: list[Click] = []
    box: DrawnBox | None = None
    phrases: list[str] = []
    label = image = None
    sources: list[str] = []
    for region in regions:
        if not isinstance(region, Mapping) or not isinstance(region.get("value"), Mapping):
            raise ContextError("interactive context: every region must be an object with a 'value'")
        kind, value = region.get("type"), region["value"]
        if kind == "keypointlabels":
            clicks.append(Click(_number(value.get("x"), "x"), _number(value.get("y"), "y"),
                                region.get("is_positive", True) is not False))
            label = _label(value, "keypointlabels") or label
        elif kind == "rectanglelabels":
            x, y = _number(value.get("x"), "x"), _number(value.get("y"), "y")
            w = min(_number(value.get("width"), "width"), 100.0 - x)
            h = min(_number(value.get("height"), "height"), 100.0 - y)
            if w <= 0 or h <= 0:
                raise ContextError("interactive context: the drawn box has no area")
            box = DrawnBox(x, y, w, h)  # the last one drawn wins
            label = _label(value, "rectanglelabels") or label
        elif kind == "textarea":
            texts = value.get("text")
            text = " ".join(t for t in texts if isinstance(t, str)) if isinstance(texts, list) else texts
            if isinstance(text, str) and text.strip():
                phrases.append(" ".join(text.split()))
        else:
            continue
        if isinstance(region.get("to_name"), str):
            image = region["to_name"]
        if isinstance(region.get("from_name"), str):
            sources.append(region["from_name"])
    return Interaction(tuple(clicks), box, phrases[-1] if phrases else None, label, image, tuple(sources))
