"""Every Gemini model we know, in ONE table: family, what it answers for masks, status, thinking rules.

The facts and their public sources are in docs/gemini-models.md; docs/models.md explains the defaults.
Everything that depends on the model name (thinking config, media resolution, the mask format to
expect, deprecation routing, what /health reports) asks this module, never the name itself.

A name that is not in the table is classified from its version number ("gemini-4.1-flash" is a
3.x-style model, "gemini-2.5-flash-8b" a 2.5 one), so a new model works the day it ships; /health
says it is unknown so nobody mistakes a guess for a fact.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..detections import RequestKind


class MaskFormat(str, enum.Enum):
    """What the model puts in "mask" when asked for segmentation."""

    PNG = "png"  # base64 PNG probability map of the box (sometimes <seg_N> tokens instead)
    POLYGON = "polygon"  # [[x, y], ...] (one or several rings), 0-1000 of the image
    NONE = "none"  # no segmentation at all (boxes only)


class ThinkingControl(str, enum.Enum):
    NONE = "none"  # no thinking: sending a thinking config is an error
    BUDGET = "budget"  # thinking_budget (2.5 generation); thinking_level is a 400
    LEVEL = "level"  # thinking_level (3.x generation); thinking_budget 0 is a 400


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str  # "2.0" | "2.5" | "3" | "robotics-er" | "unknown"
    version: tuple[int, int] | None
    tier: str  # "flash" | "flash-lite" | "pro" | "robotics" | "other"
    thinking: ThinkingControl
    # The cheapest thinking the model accepts: a budget (0 = off) or a level name.
    lowest_thinking: int | str | None
    masks: MaskFormat
    status: str  # "ga" | "preview" | "deprecated" | "shut down" | "unknown"
    routed_to: str | None = None  # Google serves this name with another model; we call that one
    note: str = ""
    known: bool = True

    @property
    def thinking_off(self) -> bool:
        """True when thinking can be turned (practically) off: budget 0 or the MINIMAL level."""
        return self.lowest_thinking in (0, "MINIMAL") or self.thinking is ThinkingControl.NONE

    @property
    def generation(self) -> int | None:
        return self.version[0] if self.version else None


def _m(name, family, version, tier, thinking, lowest, masks, status, routed_to=None, note=""):
    return ModelInfo(name, family, version, tier, thinking, lowest, masks, status, routed_to, note)


_B, _L, _N = ThinkingControl.BUDGET, ThinkingControl.LEVEL, ThinkingControl.NONE
_PNG, _POLY, _NO = MaskFormat.PNG, MaskFormat.POLYGON, MaskFormat.NONE

# The table (sources per row in docs/gemini-models.md).
MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        _m("gemini-2.0-flash", "2.0", (2, 0), "flash", _N, None, _NO, "deprecated",
           note="no segmentation; past its announced earliest shutdown (Feb 2026)"),
        _m("gemini-2.0-flash-lite", "2.0", (2, 0), "flash-lite", _N, None, _NO, "deprecated",
           note="no segmentation; past its announced earliest shutdown (Feb 2026)"),
        _m("gemini-2.5-flash", "2.5", (2, 5), "flash", _B, 0, _PNG, "shut down", routed_to="gemini-3.5-flash-lite",
           note="retired 2026-12-01, Google serves it with gemini-3.5-flash-lite (which refuses thinking_budget 0)"),
        _m("gemini-2.5-flash-lite", "2.5", (2, 5), "flash-lite", _B, 0, _PNG, "ga",
           note="2.5 masks (PNG maps), not deprecated; the default mask model"),
        _m("gemini-2.5-pro", "2.5", (2, 5), "pro", _B, 128, _PNG, "shut down", routed_to="gemini-3.8-flash",
           note="retired 2026-12-01; thinking cannot be turned off (budget 128..32768)"),
        _m("gemini-robotics-er-1.5-preview", "robotics-er", (2, 5), "robotics", _B, 0, _PNG, "preview",
           note="built on 2.5 Flash"),
        _m("gemini-robotics-er-1.6-preview", "robotics-er", (3, 0), "robotics", _B, 0, _POLY, "preview",
           note="recommended for segmentation by the 3.x release notes; answers polygons"),
        _m("gemini-3-pro-preview", "3", (3, 0), "pro", _L, "LOW", _POLY, "shut down",
           routed_to="gemini-3.1-pro-preview", note="thinking cannot be turned off (LOW..HIGH)"),
        _m("gemini-3.1-pro-preview", "3", (3, 1), "pro", _L, "LOW", _POLY, "preview",
           note="thinking cannot be turned off (LOW..HIGH)"),
        _m("gemini-3-flash-preview", "3", (3, 0), "flash", _L, "MINIMAL", _POLY, "deprecated",
           routed_to="gemini-3.6-flash"),
        _m("gemini-3.1-flash-lite", "3", (3, 1), "flash-lite", _L, "MINIMAL", _POLY, "ga"),
        _m("gemini-3.5-flash", "3", (3, 5), "flash", _L, "MINIMAL", _POLY, "deprecated",
           routed_to="gemini-3.6-flash", note="Google serves it with gemini-3.6-flash"),
        _m("gemini-3.5-flash-lite", "3", (3, 5), "flash-lite", _L, "MINIMAL", _POLY, "ga"),
        _m("gemini-3.6-flash", "3", (3, 6), "flash", _L, "MINIMAL", _POLY, "ga",
           note="the default GEMINI_MODEL: newest Flash that still accepts MINIMAL thinking"),
        _m("gemini-3.7-flash", "3", (3, 7), "flash", _L, "LOW", _POLY, "ga", note="levels LOW..HIGH only"),
        _m("gemini-3.8-flash", "3", (3, 8), "flash", _L, "LOW", _POLY, "ga", note="levels LOW..HIGH only"),
    )
}

DEFAULT_MODEL = "gemini-3.6-flash"
DEFAULT_MASK_MODEL = "gemini-2.5-flash-lite"

_VERSION = re.compile(r"(?<![\d.])(\d+)(?:\.(\d+))?(?![\d])")


def _bare(name: str) -> str:
    return name.strip().lower().rsplit("/", 1)[-1]


def _tier(name: str) -> str:
    if "robotics" in name:
        return "robotics"
    if "flash-lite" in name:
        return "flash-lite"
    if "flash" in name:
        return "flash"
    return "pro" if "-pro" in name else "other"


def _version(name: str) -> tuple[int, int] | None:
    for match in _VERSION.finditer(name):
        major = int(match.group(1))
        if 1 <= major <= 9:  # skip dates and sizes like "-001", "-8b"
            return major, int(match.group(2) or 0)
    return None


def _guess(name: str) -> ModelInfo:
    """A model not in the table, classified from its name (same rules the table follows)."""
    tier, version = _tier(name), _version(name)
    if tier == "robotics":
        new = version is not None and version >= (1, 6)
        return ModelInfo(name, "robotics-er", (3, 0) if new else (2, 5), tier, _B, 0, _POLY if new else _PNG,
                         "unknown", known=False)
    if version is None or version < (2, 5):
        return ModelInfo(name, "unknown" if version is None else f"{version[0]}.{version[1]}", version, tier,
                         _N, None, _NO, "unknown", known=False)
    if version < (3, 0):
        lowest = 128 if tier == "pro" else 0
        return ModelInfo(name, "2.5", version, tier, _B, lowest, _PNG, "unknown", known=False)
    return ModelInfo(name, "3", version, tier, _L, "LOW" if tier == "pro" else "MINIMAL", _POLY, "unknown", known=False)


def lookup(name: str) -> ModelInfo:
    """The table's row for `name` (a "models/" prefix and case are ignored), or a classified guess."""
    bare = _bare(name)
    known = MODELS.get(bare)
    return known if known is not None else _guess(bare)


def resolve(name: str) -> ModelInfo:
    """The model to call for a configured name: a deprecated name Google routes elsewhere becomes its
    successor (so the thinking rules and mask format are the successor's, which is what answers)."""
    info = lookup(name)
    seen = {info.name}
    while info.routed_to and info.routed_to not in seen:
        seen.add(info.routed_to)
        info = lookup(info.routed_to)
    return info


# --------------------------------------------------------------------------- routing per request kind


@dataclass(frozen=True)
class ModelRoute:
    """Which model serves one request kind: the configured name and the one we call."""

    configured: str
    model: ModelInfo

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def deprecation(self) -> str | None:
        """A sentence for /health and the log when the configured name is deprecated or unknown."""
        asked = lookup(self.configured)
        if asked.routed_to:
            return f"{asked.name} is {asked.status}; routed to {self.model.name}"
        if asked.status in ("deprecated", "shut down"):
            return f"{asked.name} is {asked.status}" + (f" ({asked.note})" if asked.note else "")
        if not asked.known:
            return f"{asked.name} is not in the model table; treated as a {asked.family} model"
        return None


def route(configured: str) -> ModelRoute:
    return ModelRoute(configured, resolve(configured))


@dataclass(frozen=True)
class ModelRouting:
    """GEMINI_MODEL serves boxes, points, classes and captions; GEMINI_MASK_MODEL segmentation."""

    model: ModelRoute
    mask_model: ModelRoute

    @classmethod
    def of(cls, model: str, mask_model: str) -> ModelRouting:
        return cls(route(model), route(mask_model))

    def for_kind(self, kind: RequestKind, *, model_name: str | None = None, mask_name: str | None = None) -> ModelRoute:
        """The route for one request; a control's model_name / model_mask_name override the defaults."""
        if RequestKind(kind) is RequestKind.MASKS:
            return route(mask_name) if mask_name else self.mask_model
        return route(model_name) if model_name else self.model

    def model_for(self, kind: RequestKind, *, model_name: str | None = None, mask_name: str | None = None) -> str:
        """plan.ModelChooser: the name of the model to call for one request."""
        return self.for_kind(kind, model_name=model_name, mask_name=mask_name).name

    def describe(self) -> dict:
        """The routing for /health."""
        kinds = {k.value: (self.mask_model if k is RequestKind.MASKS else self.model).name for k in RequestKind}
        notes = sorted({n for n in (self.model.deprecation, self.mask_model.deprecation) if n})
        return {
            "model": self.model.name,
            "mask_model": self.mask_model.name,
            "configured": {"GEMINI_MODEL": self.model.configured, "GEMINI_MASK_MODEL": self.mask_model.configured},
            "by_kind": kinds,
            "mask_format": {"model": self.model.model.masks.value, "mask_model": self.mask_model.model.masks.value},
            "deprecations": notes,
        }
