"""Prompt text for each kind of request, built from the project's labels and hints.

The wording follows Google's own spatial-understanding guide and cookbook (box_2d as
[ymin, xmin, ymax, xmax] normalised to 0-1000, masks as PNG probability maps, points as [y, x]).
The target list has one fixed line shape, `- "<label>": <description>`, so the answer can name
labels exactly as the project spells them; the emulator reads the same lines.

Bump PROMPT_VERSION whenever the wording changes: it is part of `model_version`, so Label Studio
re-asks for predictions made with an older prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..labelconfig import AttributeSpec, LabelSpec

# (per-region control, the labels it is asked for or None for all): plan.PlannedRequest.attributes
Asked = tuple[tuple[AttributeSpec, "tuple[str, ...] | None"], ...]

PROMPT_VERSION = "p1"


@dataclass(frozen=True)
class Prompt:
    system: str | None
    user: str
    json_mode: bool
    response_schema: dict | None = None
    # the plan's media resolution (LOW..ULTRA_HIGH), None: GEMINI_MEDIA_RESOLUTION (client.py)
    media_resolution: str | None = None


def _target_lines(labels: tuple[LabelSpec, ...]) -> str:
    lines = []
    for label in labels:
        name = json.dumps(label.value, ensure_ascii=False)
        if label.hint and label.hint.strip() and label.hint.strip() != label.value:
            lines.append(f"- {name}: {' '.join(label.hint.split())}")
        else:
            lines.append(f"- {name}")
    return "\n".join(lines)


_BOX_SCHEMA = {
    "type": "ARRAY",
    "items": {
        "type": "OBJECT",
        "properties": {
            "box_2d": {"type": "ARRAY", "items": {"type": "INTEGER"}},
            "label": {"type": "STRING"},
            "confidence": {"type": "NUMBER"},
        },
        "required": ["box_2d", "label"],
        "propertyOrdering": ["box_2d", "label", "confidence"],
    },
}

_POINT_SCHEMA = {
    "type": "ARRAY",
    "items": {
        "type": "OBJECT",
        "properties": {
            "point": {"type": "ARRAY", "items": {"type": "INTEGER"}},
            "label": {"type": "STRING"},
            "confidence": {"type": "NUMBER"},
        },
        "required": ["point", "label"],
        "propertyOrdering": ["point", "label", "confidence"],
    },
}

_CHOICE_SCHEMA = {"type": "ARRAY", "items": {"type": "STRING"}}


def _number_range(spec: AttributeSpec) -> str:
    lo, hi = spec.minimum, spec.maximum
    if lo is not None and hi is not None:
        return f" from {lo:g} to {hi:g}"
    if lo is not None:
        return f" of at least {lo:g}"
    return f" of at most {hi:g}" if hi is not None else ""


def _attribute_form(spec: AttributeSpec) -> str:
    """What the value looks like, in the line's parentheses (the emulator reads it back)."""
    if spec.tag == "Choices":
        names = ", ".join(json.dumps(o.value, ensure_ascii=False) for o in spec.options)
        return f"{'a JSON list of all that apply of' if spec.multiple else 'one of'} {names}"
    if spec.tag == "Number":
        return "number" + _number_range(spec)
    if spec.tag == "Rating":
        return "rating, a whole number" + _number_range(spec)
    return "text"


def _attribute_line(spec: AttributeSpec, labels: tuple[str, ...] | None) -> str:
    line = f"- {json.dumps(spec.name, ensure_ascii=False)} ({_attribute_form(spec)})"
    meanings = "; ".join(f"{json.dumps(o.value, ensure_ascii=False)} means {' '.join(o.hint.split())}"
                         for o in spec.options if o.hint and o.hint.strip() != o.value)
    question = " ".join(spec.question.split()) if spec.question else ""
    detail = "; ".join(part for part in (question, meanings) if part)
    if detail:
        line += f": {detail}"
    if labels is not None:
        line += ("; " if detail else ": ") + "only for entries labelled " + ", ".join(json.dumps(v, ensure_ascii=False) for v in labels)
    return line


def attribute_block(asked: Asked) -> str:
    """The per-region questions, answered inside each entry (one call gives the regions and their
    attributes); empty when there are none."""
    if not asked:
        return ""
    lines = "\n".join(_attribute_line(spec, labels) for spec, labels in asked)
    return (
        '\nFor each entry also answer these questions about that one object, in the key "attributes" '
        "as a JSON object with one key per question name (leave a question out when it does not apply "
        "to the entry):\n" + lines
    )


_ATTRIBUTE_TYPES = {"TextArea": "STRING", "Number": "NUMBER", "Rating": "INTEGER"}


def with_attributes(schema: dict, asked: Asked) -> dict:
    """A list-of-entries response schema with the per-region questions' "attributes" object added."""
    if not asked:
        return schema
    properties: dict[str, dict[str, Any]] = {}
    for spec, _ in asked:
        if spec.tag == "Choices":
            one = {"type": "STRING", "enum": [o.value for o in spec.options]}
            properties[spec.name] = {"type": "ARRAY", "items": one} if spec.multiple else one
        else:
            properties[spec.name] = {"type": _ATTRIBUTE_TYPES[spec.tag]}
    items = dict(schema["items"])
    items["properties"] = {**items["properties"], "attributes": {"type": "OBJECT", "properties": properties}}
    items["propertyOrdering"] = [*items["propertyOrdering"], "attributes"]
    return {**schema, "items": items}


def detection_prompt(labels: tuple[LabelSpec, ...], max_objects: int, extra: str | None = None,
                     asked: Asked = ()) -> Prompt:
    system = (
        "Return bounding boxes as a JSON array with labels. Never return masks or code fencing. "
        f"Limit to {max_objects} objects. Use exactly the label names given, never invent others. "
        "If an object is present several times, return each occurrence as its own entry."
    )
    user = (
        "Detect every object in the image that matches one of these labels "
        "(label name, then what it looks like):\n"
        f"{_target_lines(labels)}\n"
        'Output a JSON list where each entry contains the 2D bounding box in "box_2d" as '
        "[ymin, xmin, ymax, xmax] normalized to 0-1000, the label name in \"label\" and your "
        f'confidence from 0 to 1 in "confidence". Limit to {max_objects} objects.'
    ) + attribute_block(asked)
    if extra:
        user += f"\n{extra}"
    return Prompt(system=system, user=user, json_mode=True, response_schema=with_attributes(_BOX_SCHEMA, asked))


def segmentation_prompt(labels: tuple[LabelSpec, ...], max_objects: int, extra: str | None = None,
                        asked: Asked = ()) -> Prompt:
    # No response schema: a schema does not help masks, and the mask must stay a free string.
    user = (
        "Give the segmentation masks for every object in the image that matches one of these labels "
        "(label name, then what it looks like):\n"
        f"{_target_lines(labels)}\n"
        "Output a JSON list of segmentation masks where each entry contains the 2D bounding box in the "
        'key "box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000, the segmentation mask in key '
        '"mask" as a base64 PNG probability map of the box, the label name in the key "label" and your '
        'confidence from 0 to 1 in the key "confidence". Use exactly the label names given. '
        f"Always generate the full mask. Limit to {max_objects} objects."
    ) + attribute_block(asked)
    if extra:
        user += f"\n{extra}"
    return Prompt(system=None, user=user, json_mode=True, response_schema=None)


def pointing_prompt(labels: tuple[LabelSpec, ...], max_objects: int, extra: str | None = None,
                    asked: Asked = ()) -> Prompt:
    user = (
        "Point to every object in the image that matches one of these labels "
        "(label name, then what it looks like):\n"
        f"{_target_lines(labels)}\n"
        'Output a JSON list where each entry contains the point in "point" as [y, x] normalized to '
        '0-1000 at the centre of the object, the label name in "label" and your confidence from 0 to 1 '
        f'in "confidence". Use exactly the label names given. Limit to {max_objects} points.'
    ) + attribute_block(asked)
    if extra:
        user += f"\n{extra}"
    return Prompt(system=None, user=user, json_mode=True, response_schema=with_attributes(_POINT_SCHEMA, asked))


def choice_prompt(
    choices: tuple[LabelSpec, ...], multiple: bool, question: str | None = None, n_images: int = 1
) -> Prompt:
    what = "these images" if n_images > 1 else "the image"
    rule = "all options that apply" if multiple else "exactly one option"
    user = (
        (question.strip() + "\n" if question else "")
        + f"Classify {what}. Choose {rule} from this list (option name, then what it means):\n"
        f"{_target_lines(choices)}\n"
        "Answer with a JSON list of the chosen option names, spelled exactly as given."
    )
    return Prompt(system=None, user=user, json_mode=True, response_schema=_CHOICE_SCHEMA)


def text_prompt(question: str | None, n_images: int = 1) -> Prompt:
    if question:
        user = question.strip()
    elif n_images > 1:
        user = "Describe what differs between these images, in one or two sentences."
    else:
        user = "Caption this image in one sentence."
    return Prompt(system=None, user=user + "\nAnswer in plain text.", json_mode=False)


def with_image_index(prompt: Prompt, n_images: int) -> Prompt:
    """A spatial or pointing prompt sent with several images (the pages of a multi-page document,
    pages.py): each entry says which image it is on, 0-based, as parse.py reads it."""
    user = (prompt.user + f"\nThe {n_images} images are the pages of one document, in order. Add to each entry the key "
            f'"image_index": the 0-based position of the image it is on (0 to {n_images - 1}).')
    schema = prompt.response_schema
    if schema is not None:
        items = dict(schema["items"])
        items["properties"] = {**items["properties"], "image_index": {"type": "INTEGER"}}
        items["required"] = [*items["required"], "image_index"]
        items["propertyOrdering"] = [*items["propertyOrdering"], "image_index"]
        schema = {**schema, "items": items}
    return Prompt(system=prompt.system, user=user, json_mode=prompt.json_mode, response_schema=schema,
                  media_resolution=prompt.media_resolution)
