"""One region in several results: its shape, its <Labels> and its per-region controls' answers.

Label Studio's own OCR template and examples write a labelled region drawn with a bare shape tool
as a shape result (`rectangle`, `polygon`, ...) plus a `labels` result, and a per-region control's
answer (`perRegion="true"`: a transcription, an attribute choice, a number, a rating) as one more
result, all sharing the region's `id` and carrying its geometry: the editor joins them into one
region. Handlers build a region as its `*labels` result; this module splits it into that form and
adds the answers its detection carries (`Detection.attributes`) for the controls that apply to its
label (whenTagName / whenLabelValue).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..detections import AttributeValue
from ..labelconfig import AttributeSpec, ControlSpec
from .handler import Conversion
from .reverse import LABEL_KEYS, label_of

# fields a companion result takes from its region's result; its own are from_name, type and value
_SHARED = ("id", "to_name", "original_width", "original_height", "image_rotation")


def _companion(region: Mapping[str, Any], from_name: str, result_type: str, value: dict) -> dict:
    result = {k: region[k] for k in _SHARED if k in region}
    result.update(from_name=from_name, type=result_type, value=value)
    return result


def attribute_value(spec: AttributeSpec, answer: AttributeValue) -> Any:
    """An answer as the control's result value stores it (a TextArea's text is a list of lines)."""
    if spec.tag == "TextArea":
        return [answer]
    if spec.tag == "Choices":
        return list(answer) if isinstance(answer, tuple) else [answer]
    return answer


def with_region_parts(control: ControlSpec, conversion: Conversion) -> Conversion:
    """The control's region results in the split form, with their per-region answers."""
    if control.labels_from is None and not control.attributes:
        return conversion
    out: list[dict] = []
    for region, det in zip(conversion.results, conversion.sources, strict=True):
        value = region["value"]
        label = label_of(value)
        geometry = {k: v for k, v in value.items() if k not in LABEL_KEYS}
        if control.labels_from is not None and label is not None:
            out.append({**region, "value": geometry})
            out.append({**_companion(region, control.labels_from, "labels", {**geometry, "labels": [label]}),
                        **({"score": region["score"]} if "score" in region else {})})
        else:
            out.append(region)
        for spec in control.attributes:
            answer = det.attribute(spec.name)
            if label is None or answer is None or not spec.applies(control, label):
                continue
            out.append(_companion(region, spec.name, spec.result_type, {**geometry, spec.value_key: attribute_value(spec, answer)}))
    return Conversion(tuple(out), conversion.dropped)


def _answer_of(spec: AttributeSpec, value: Mapping[str, Any]) -> AttributeValue | None:
    """A per-region result's value read back as the answer it stands for (None: empty or malformed)."""
    raw = value.get(spec.value_key)
    if spec.tag == "TextArea":
        lines = [raw] if isinstance(raw, str) else [v for v in raw or () if isinstance(v, str)] if isinstance(raw, list) else []
        text = "\n".join(lines).strip()
        return text or None
    if spec.tag == "Choices":
        picked = tuple(c for c in raw or () if isinstance(c, str)) if isinstance(raw, list) else ()
        return picked or None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    return int(raw) if spec.tag == "Rating" else raw


def answers_by_region(results: Sequence[Any], controls: Sequence[ControlSpec]) -> dict[str, tuple[tuple[str, AttributeValue], ...]]:
    """The per-region controls' answers in an annotation, by region id (for few-shot examples)."""
    specs = {spec.name: spec for control in controls for spec in control.attributes}
    out: dict[str, list[tuple[str, AttributeValue]]] = {}
    for r in results:
        if not isinstance(r, Mapping) or not isinstance(r.get("id"), str) or not isinstance(r.get("value"), Mapping):
            continue
        spec = specs.get(str(r.get("from_name")))
        answer = _answer_of(spec, r["value"]) if spec is not None else None
        if spec is not None and answer is not None:
            out.setdefault(r["id"], []).append((spec.name, answer))
    return {rid: tuple(answers) for rid, answers in out.items()}
