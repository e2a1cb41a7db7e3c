"""`model_version`: changes exactly when predictions would change.

Label Studio skips tasks that already hold a prediction of the current model_version, so the version
must move with the model name, the provider's prompt version (its wording of the requests) and the
project's label set (labels, hints and per-control model_* settings), and must stay put otherwise
(no timestamps, no process ids).
"""

from __future__ import annotations

import hashlib
import json
import re

from .labelconfig import ProjectSpec


def label_set_digest(spec: ProjectSpec) -> str:
    essential = [
        {
            "name": c.name,
            "tag": c.tag,
            "to": list(c.to_names),
            "labels": [[label.value, label.hint] for label in c.labels],
            "settings": [
                c.settings.score_threshold,
                c.settings.max_objects,
                c.settings.mask_threshold,
                c.settings.polygon_tolerance,
                c.settings.min_area,
                c.settings.prompt,
                c.settings.model_name,
                c.settings.model_mask_name,
            ],
            "multiple": c.multiple,
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
