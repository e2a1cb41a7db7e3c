"""`model_version`: changes exactly when predictions would change.

Label Studio skips tasks that already hold a prediction of the current model_version, so the version
must move with the model name, the provider's prompt version (its wording of the requests) and the
project's label set (labels, hints and per-control model_* settings) and what the review loop
learned for the project (`ProjectSpec.learned_tag`), and must stay put otherwise (no timestamps, no
process ids).

The per-control settings enter the digest field by field, in `ControlSettings`' declaration order,
read off the dataclass: a setting added there changes the version without anyone listing it here.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, fields

from .gemini.prompts import PROMPT_VERSION
from .labelconfig import ControlSettings, ControlSpec, ProjectSpec
from .settings import Settings
from .textunits import text_unit

# Settings added after versions were in use: in the digest only when they differ from their default,
# so a project that does not use them keeps its model_version (and Label Studio its predictions).
OMITTED_AT_DEFAULT = ("tiling", "media_resolution", "ocr_granularity")


def settings_digest_values(settings: ControlSettings) -> list:
    """Every per-control setting, in declaration order (the order the digest has always used)."""
    return [getattr(settings, f.name) for f in fields(settings)
            if f.name not in OMITTED_AT_DEFAULT or getattr(settings, f.name) != f.default]


def _derived(control: ControlSpec) -> dict:
    """A control's derived fields (its <Labels> companion, its per-region controls, every field of
    each, the unit of text it reads), only when it has them: the versions of configs without them
    stay what they were. The unit moves the version of a control reading text even at its default:
    its prompt names the unit (textunits.py)."""
    out: dict = {}
    if control.labels_from is not None:
        out["labels_from"] = control.labels_from
    if control.attributes:
        out["attributes"] = [asdict(a) for a in control.attributes]
    if control.labels_field is not None:  # the field's name, never the labels a task holds in it
        out["labels_field"] = control.labels_field
    unit = text_unit(control.settings.ocr_granularity, ((a.tag, a.question) for a in control.attributes))
    if unit is not None:
        out["text_unit"] = unit
    if control.question is not None:  # a VQA TextArea: which <Text> it answers
        out["question"] = asdict(control.question)
    if control.scale is not None:  # a Number / Rating on the whole image: its bounds
        out["scale"] = asdict(control.scale)
    return out


def label_set_digest(spec: ProjectSpec) -> str:
    essential = [
        {
            "name": c.name,
            "tag": c.tag,
            "to": list(c.to_names),
            "labels": [[label.value, label.hint] for label in c.labels],
            "settings": settings_digest_values(c.settings),
            "multiple": c.multiple,
            **_derived(c),
        }
        for c in spec.controls
    ]
    blob = json.dumps(essential, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def model_version(
    model: str,
    spec: ProjectSpec,
    *,
    prompt_version: str,
    emulated: bool = False,
    suffix: str | None = None,
    mask_model: str | None = None,
) -> str:
    """`gemini-ls-<model>[-masks-<mask model>]-<prompt>-<digest>`: both models when they differ."""
    model_tag = re.sub(r"[^A-Za-z0-9.]+", "-", model).strip("-")
    if mask_model and mask_model != model:
        model_tag += "-masks-" + re.sub(r"[^A-Za-z0-9.]+", "-", mask_model).strip("-")
    parts = ["gemini-ls", model_tag, prompt_version, label_set_digest(spec)]
    if emulated:
        parts.append("emulator")
    if suffix:
        parts.append(re.sub(r"[^A-Za-z0-9.]+", "-", suffix))
    return "-".join(parts)


def model_version_for(settings: Settings, spec: ProjectSpec, *, emulated: bool) -> str:
    """The one derivation of model_version: the server, `prelabel` and batch jobs must agree on it,
    since Label Studio skips tasks holding a prediction of the current version and exactly-once
    claims are keyed by it. `spec` is the effective one (review/learning.py `LearnedState.applied`):
    the learned state's tag comes from the same object the predictions are made with."""
    routing = settings.routing
    base = model_version(
        routing.model.name, spec, prompt_version=PROMPT_VERSION, emulated=emulated,
        suffix=settings.model_version_suffix, mask_model=routing.mask_model.name,
    )
    return f"{base}-{spec.learned_tag}" if spec.learned_tag else base
