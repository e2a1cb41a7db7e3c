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

from ..labelconfig import LabelSpec

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


def detection_prompt(labels: tuple[LabelSpec, ...], max_objects: int, extra: str | None = None) -> Prompt:
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
    )
    if extra:
        user += f"\n{extra}"
    return Prompt(system=system, user=user, json_mode=True, response_schema=_BOX_SCHEMA)


def segmentation_prompt(labels: tuple[LabelSpec, ...], max_objects: int, extra: str | None = None) -> Prompt:
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
    )
    if extra:
        user += f"\n{extra}"
    return Prompt(system=None, user=user, json_mode=True, response_schema=None)


def pointing_prompt(labels: tuple[LabelSpec, ...], max_objects: int, extra: str | None = None) -> Prompt:
    user = (
        "Point to every object in the image that matches one of these labels "
        "(label name, then what it looks like):\n"
        f"{_target_lines(labels)}\n"
        'Output a JSON list where each entry contains the point in "point" as [y, x] normalized to '
        '0-1000 at the centre of the object, the label name in "label" and your confidence from 0 to 1 '
        f'in "confidence". Use exactly the label names given. Limit to {max_objects} points.'
    )
    if extra:
        user += f"\n{extra}"
    return Prompt(system=None, user=user, json_mode=True, response_schema=_POINT_SCHEMA)


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
