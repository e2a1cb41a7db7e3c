"""Label Studio's own label-config templates, read from the installed `label-studio` package (never a
copy): what a new user starts a project from."""

from __future__ import annotations

import yaml

from tests.fixtures.labelstudio import LS_VENV


def template_config(group: str, name: str) -> str:
    """`config` of annotation_templates/<group>/<name>/config.yml in LS_VENV's label-studio."""
    found = sorted(LS_VENV.glob(f"lib/python3*/site-packages/label_studio/annotation_templates/{group}/{name}/config.yml"))
    assert found, f"no template {group}/{name} in {LS_VENV}"
    return yaml.safe_load(found[-1].read_text())["config"]
