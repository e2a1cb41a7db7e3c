"""gemini/models.py: the one model table, deprecation routing and the routing per request kind."""

from __future__ import annotations

import pytest

from gemini_ls.detections import RequestKind
from gemini_ls.gemini.models import (
    DEFAULT_MASK_MODEL,
    DEFAULT_MODEL,
    MODELS,
    MaskFormat,
    ModelRouting,
    ThinkingControl,
    lookup,
    resolve,
)
from gemini_ls.settings import Settings


def test_table_is_consistent():
    for name, info in MODELS.items():
        assert info.name == name and info.known
        # never both: a model takes a budget or a level, and its cheapest setting is of that kind
        if info.thinking is ThinkingControl.BUDGET:
            assert isinstance(info.lowest_thinking, int)
        elif info.thinking is ThinkingControl.LEVEL:
            assert info.lowest_thinking in ("MINIMAL", "LOW")
        else:
            assert info.lowest_thinking is None
        if info.routed_to:
            assert info.routed_to in MODELS and info.status in ("deprecated", "shut down")
    assert not lookup(DEFAULT_MODEL).routed_to and lookup(DEFAULT_MODEL).status == "ga"
    assert lookup(DEFAULT_MASK_MODEL).masks is MaskFormat.PNG and lookup(DEFAULT_MASK_MODEL).thinking_off


@pytest.mark.parametrize(
    ("name", "masks", "thinking_off"),
    [
        ("gemini-2.5-flash", MaskFormat.PNG, True),
        ("gemini-2.5-pro", MaskFormat.PNG, False),
        ("gemini-3.6-flash", MaskFormat.POLYGON, True),
        ("gemini-3.1-pro-preview", MaskFormat.POLYGON, False),
        ("gemini-3.8-flash", MaskFormat.POLYGON, False),
        ("gemini-robotics-er-1.6-preview", MaskFormat.POLYGON, True),
        ("gemini-robotics-er-1.5-preview", MaskFormat.PNG, True),
        ("gemini-2.0-flash", MaskFormat.NONE, True),
    ],
)
def test_capabilities(name, masks, thinking_off):
    info = lookup(name)
    assert info.masks is masks and info.thinking_off is thinking_off


def test_unknown_names_are_classified_by_version():
    assert lookup("models/gemini-4.2-flash").masks is MaskFormat.POLYGON
    assert lookup("gemini-4.2-flash").lowest_thinking == "MINIMAL" and not lookup("gemini-4.2-flash").known
    assert lookup("gemini-4-pro").lowest_thinking == "LOW"
    assert lookup("gemini-2.5-flash-8b-exp").thinking is ThinkingControl.BUDGET
    assert lookup("gemini-flash-latest").thinking is ThinkingControl.NONE  # no version: send nothing
    assert lookup("GEMINI-3.6-FLASH") is MODELS["gemini-3.6-flash"]


def test_deprecated_names_route_to_their_successor():
    assert resolve("gemini-3.5-flash").name == "gemini-3.6-flash"
    assert resolve("gemini-3-pro-preview").name == "gemini-3.1-pro-preview"
    assert resolve("gemini-3.6-flash").name == "gemini-3.6-flash"
    assert resolve("gemini-2.5-flash").name == "gemini-3.5-flash-lite"  # retired 2026-12-01
    routing = ModelRouting.of("gemini-3.5-flash", "gemini-2.5-flash")
    health = routing.describe()
    assert health["model"] == "gemini-3.6-flash" and health["configured"]["GEMINI_MODEL"] == "gemini-3.5-flash"
    assert "gemini-3.5-flash is deprecated; routed to gemini-3.6-flash" in health["deprecations"]
    assert "gemini-2.5-flash is shut down; routed to gemini-3.5-flash-lite" in health["deprecations"]
    assert health["mask_format"]["mask_model"] == "polygon"  # what the successor answers with
    unknown = ModelRouting.of("gemini-4.2-flash", "gemini-2.5-flash-lite").describe()["deprecations"]
    assert unknown == ["gemini-4.2-flash is not in the model table; treated as a 3 model"]


def test_routing_per_kind_and_overrides():
    routing = Settings(model="gemini-3.8-flash", mask_model="gemini-2.5-flash-lite").routing
    assert routing.for_kind(RequestKind.BOXES).name == "gemini-3.8-flash"
    assert routing.for_kind(RequestKind.TEXT).name == "gemini-3.8-flash"
    assert routing.for_kind(RequestKind.MASKS).name == "gemini-2.5-flash-lite"
    assert routing.for_kind(RequestKind.MASKS, mask_name="gemini-robotics-er-1.6-preview").name == (
        "gemini-robotics-er-1.6-preview"
    )
    assert routing.for_kind(RequestKind.POINTS, model_name="gemini-3.5-flash").name == "gemini-3.6-flash"
    assert routing.describe()["by_kind"] == {
        "boxes": "gemini-3.8-flash", "masks": "gemini-2.5-flash-lite", "points": "gemini-3.8-flash",
        "choice": "gemini-3.8-flash", "text": "gemini-3.8-flash", "number": "gemini-3.8-flash",
    }
