"""Labels from the task: a labels control with `value="$field"` (Label Studio's dynamic labels).

Label Studio builds one `<Label>` per entry of `data[field]`, after the control's static labels: an
entry is an object whose `value` is the label (required) and whose other keys become the Label's
attributes: `hint` (hover text), `html` (what the button shows, e.g. the inventory template's
`<img src=...>` of the product), `alias`, `background`... This module reads them per task, pure:

- `task_labels`: a control's labels for one task, static first; a missing field, a field that is not
  a list or one longer than MAX_DYNAMIC_LABELS fails that task alone (`DynamicLabelsError`); entries
  without a usable `value` are skipped; an `html` holding an `<img src>` gives the label a
  `reference` (the picture dynrefs.py fetches and sends next to the label's name);
- `resolve_plan`: a planned request with its controls' labels for one task. A plan's identity and
  model_version come from the config alone (the label set is per task, the version is not);
- `phrases`: labels of three words or more, none with a picture (the visual-genome template's
  "panda bear holding something in its paw") are referring expressions: one region each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

from .labelconfig import ControlSpec, LabelSpec
from .plan import PlannedRequest, union_labels

MAX_LABEL_CHARS = 500  # a label longer than this is no label name (and would bloat the prompt)
PHRASE_WORDS = 3  # a label of this many words or more, without a picture, is a phrase to ground


class DynamicLabelsError(ValueError):
    """A task's labels field cannot be read: the task fails alone with this message."""


class _FirstImage(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.src: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and self.src is None:
            self.src = next((v.strip() for k, v in attrs if k == "src" and v and v.strip()), None)


def reference_src(html: Any) -> str | None:
    """The `src` of the first `<img>` in a label's `html`, None when there is none."""
    if not isinstance(html, str) or "<img" not in html.lower():
        return None
    parser = _FirstImage()
    try:
        parser.feed(html[:100_000])
        parser.close()
    except (ValueError, AssertionError):  # html.parser gives up on some malformed markup
        return None
    return parser.src


def _entry(raw: Any) -> LabelSpec | None:
    if not isinstance(raw, Mapping):
        return None
    value = raw.get("value")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LABEL_CHARS:
        return None
    hint = raw.get("hint")
    return LabelSpec(
        value=value,
        hint=hint.strip()[:MAX_LABEL_CHARS] if isinstance(hint, str) and hint.strip() else None,
        reference=reference_src(raw.get("html")),
    )


def task_labels(control: ControlSpec, data: Mapping[str, Any], cap: int) -> tuple[LabelSpec, ...]:
    """`control`'s labels for a task's `data`: its static labels, then those of data[labels_field]."""
    field = control.labels_field
    if field is None:
        return control.labels
    where = f"data[{field!r}] (labels of <{control.tag} name={control.name!r} value=\"${field}\">)"
    if field not in data:
        if control.labels:
            return control.labels
        raise DynamicLabelsError(f"the task has no {where}")
    entries = data[field]
    if not isinstance(entries, list):
        raise DynamicLabelsError(
            f"{where} is {type(entries).__name__}, not a list of {{\"value\": ...}} objects")
    if len(entries) > cap:
        raise DynamicLabelsError(f"{where} holds {len(entries):,} labels, above MAX_DYNAMIC_LABELS={cap}")
    seen = {label.value for label in control.labels}
    out = list(control.labels)
    for raw in entries:
        label = _entry(raw)
        if label is not None and label.value not in seen:
            seen.add(label.value)
            out.append(label)
    return tuple(out)


def is_phrase(label: LabelSpec) -> bool:
    return label.reference is None and len(re.findall(r"\w+", label.value)) >= PHRASE_WORDS


def resolve_plan(plan: PlannedRequest, data: Any, cap: int) -> PlannedRequest:
    """`plan` with the labels of `data` (a task's data) in its controls; unchanged without labels from the task."""
    if not any(c.labels_field for c in plan.controls):
        return plan
    if not isinstance(data, Mapping):
        raise DynamicLabelsError("the task has no 'data' object")
    controls = tuple(replace(c, labels=task_labels(c, data, cap)) for c in plan.controls)
    labels = union_labels(list(controls))
    return replace(plan, controls=controls, labels=labels, phrases=bool(labels) and all(map(is_phrase, labels)))


def one_per_phrase(detections: tuple[Any, ...]) -> tuple[Any, ...]:
    """A phrase names one region: the most confident detection of each label (order kept)."""
    best: dict[str, Any] = {}
    for det in detections:
        known = best.get(det.label)
        if known is None or (det.score or 0.0) > (known.score or 0.0):
            best[det.label] = det
    keep = {id(d) for d in best.values()}
    return tuple(d for d in detections if id(d) in keep)
