"""Typed Gemini answers -> Label Studio prediction results, one handler per control type.

`REGISTRY` maps a Label Studio tag to its handler; `convert_for` dispatches a control over the
task's images. The tags are those of labelconfig.CONTROL_KINDS, checked at import.

Multi-image tasks: region controls (rectangles, masks, polygons, keypoints) get one call per
image in the control's toName, and each keeps only the detections whose `image_index` is
that image's position in toName. Per-task answers (Choices, TextArea) are not about one
image, but a result must name exactly one object: Label Studio's SDK validator splits
toName="image,image2" and requires `to_name` to be one of those names, and the editor keys
its objects by single names. They are emitted once, for the first toName image present.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType

from ..detections import DropReason, ImageMeta, ParsedAnswer
from ..labelconfig import CONTROL_KINDS, ControlSpec
from .brush import BrushHandler
from .choices import ChoicesHandler
from .handler import Conversion, RegionHandler
from .keypoint import KeyPointHandler
from .polygon import PolygonHandler
from .rectangle import RectangleHandler
from .textarea import TextAreaHandler

REGISTRY: Mapping[str, RegionHandler] = MappingProxyType({
    h.tag: h
    for h in (
        RectangleHandler(),
        BrushHandler(),
        PolygonHandler(),
        KeyPointHandler(),
        ChoicesHandler(),
        TextAreaHandler(),
    )
})

# labelconfig decides which tags a project may use, this registry how each is filled: one list of
# tags in two places must not drift (a tag accepted there but missing here would fail every task).
assert set(REGISTRY) == set(CONTROL_KINDS), (
    f"control tags differ: labelconfig only {set(CONTROL_KINDS) - set(REGISTRY)}, regions only {set(REGISTRY) - set(CONTROL_KINDS)}"
)

def handler_for(control: ControlSpec) -> RegionHandler:
    try:
        return REGISTRY[control.tag]
    except KeyError:
        raise ValueError(f"no region handler for <{control.tag}> (control {control.name!r})") from None


def convert_for(control: ControlSpec, images: Mapping[str, ImageMeta], answer: ParsedAnswer) -> Conversion:
    """All results of one control over the task's images (by name), with merged drop counts."""
    handler = handler_for(control)
    targets = [images[name] for name in control.to_names if name in images]
    if control.kind.per_task:
        targets = targets[:1]
    results: list[dict] = []
    dropped: Counter[DropReason] = Counter()
    for image in targets:
        conversion = handler.convert(control, image, answer)
        results.extend(conversion.results)
        dropped.update(conversion.dropped)
    return Conversion.of(results, dropped)


__all__ = ["REGISTRY", "Conversion", "RegionHandler", "convert_for", "handler_for"]
