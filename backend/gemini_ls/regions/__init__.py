"""Typed Gemini answers -> Label Studio prediction results, one handler per control type, and back.

`REGISTRY` maps a Label Studio tag to its handler; `convert_for` dispatches a control over the
task's images. The tags are those of labelconfig.CONTROL_KINDS, checked at import. Each handler
also reads its own result type back (`reverse`): `answer_from_results` turns an annotation's
results for some controls into the typed answer a provider should have given (few-shot examples).

A bare shape tool (Rectangle, ...) and the per-region controls split a region into several results
sharing its id (perregion.py).

Multi-image tasks: region controls (rectangles, masks, polygons, keypoints) get one call per
image in the control's toName, and each keeps only the detections whose `image_index` is
that image's position in toName. Per-task answers (Choices, TextArea) are not about one
image, but a result must name exactly one object: Label Studio's SDK validator splits
toName="image,image2" and requires `to_name` to be one of those names, and the editor keys
its objects by single names. They are emitted once, for the first toName image present.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from ..detections import DropReason, ImageMeta, ParsedAnswer
from ..labelconfig import CONTROL_KINDS, ControlSpec
from .brush import BrushHandler
from .choices import ChoicesHandler
from .ellipse import EllipseHandler
from .handler import Conversion, RegionHandler
from .keypoint import KeyPointHandler
from .perregion import answers_by_region, with_region_parts
from .polygon import PolygonHandler
from .rectangle import RectangleHandler
from .reverse import merge
from .textarea import TextAreaHandler
from .wholeimage import NumberHandler, TaxonomyHandler

REGISTRY: Mapping[str, RegionHandler] = MappingProxyType({
    h.tag: h
    for h in (
        RectangleHandler(),
        BrushHandler(),
        PolygonHandler(),
        KeyPointHandler(),
        EllipseHandler(),
        # the bare shape tools: a region as a shape result + a `labels` result (perregion.py)
        RectangleHandler("Rectangle"),
        PolygonHandler("Polygon"),
        BrushHandler("Brush"),
        KeyPointHandler("KeyPoint"),
        EllipseHandler("Ellipse"),
        ChoicesHandler(),
        TextAreaHandler(),
        NumberHandler("Number"),
        NumberHandler("Rating"),
        TaxonomyHandler(),
    )
})

# labelconfig decides which tags a project may use, this registry how each is filled: one list of
# tags in two places must not drift (a tag accepted there but missing here would fail every task).
assert set(REGISTRY) == set(CONTROL_KINDS), (
    f"control tags differ: labelconfig only {set(CONTROL_KINDS) - set(REGISTRY)}, regions only {set(REGISTRY) - set(CONTROL_KINDS)}"
)
# result type -> handler, for reading results back ("rectanglelabels" -> RectangleLabels)
_BY_RESULT_TYPE: Mapping[str, RegionHandler] = MappingProxyType({CONTROL_KINDS[tag][0]: h for tag, h in REGISTRY.items()})


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
        conversion = with_region_parts(control, handler.convert(control, image, answer))
        results.extend(conversion.results)
        dropped.update(conversion.dropped)
    return Conversion.of(results, dropped)


def _reverse_handler(result_type: Any) -> RegionHandler | None:
    """The handler reading a result type back; a bare "rectangle" (no labels) reads as "rectanglelabels"."""
    t = str(result_type or "").lower()
    return _BY_RESULT_TYPE.get(t) or _BY_RESULT_TYPE.get(t + "labels")


def answer_from_results(results: Sequence[Any], controls: Sequence[ControlSpec], image_names: Sequence[str]) -> ParsedAnswer:
    """The typed answer Label Studio `results` (an annotation) give for `controls` over `image_names`.

    Only results of those controls count. A region result counts on an image of `image_names` (its
    detections' `image_index` is that image's position); a per-task one (choices, text) names one
    image whichever it is. Everything is kept in the results' order: which labels and how many
    items a request may show is the caller's choice.
    """
    names = {c.name for c in controls}
    # a bare shape tool's region reads back from its `labels` result, which carries the geometry too
    by_labels = {c.labels_from: REGISTRY[c.tag] for c in controls if c.labels_from is not None}
    names |= set(by_labels)
    per_task = any(c.kind.per_task for c in controls)
    answers = answers_by_region(results, controls)  # the per-region controls' answers, by region id
    pieces = []
    for r in results:
        if not isinstance(r, Mapping) or r.get("from_name") not in names or not isinstance(r.get("value"), Mapping):
            continue
        to_name = r.get("to_name")
        if isinstance(to_name, str) and to_name in image_names:
            index = list(image_names).index(to_name)
        elif per_task:
            index = 0
        else:
            continue
        from_labels = by_labels.get(str(r.get("from_name"))) if r.get("type") == "labels" else None
        handler = from_labels or _reverse_handler(r.get("type"))
        if handler is None:
            continue
        piece = handler.reverse(r, index)
        mine = answers.get(str(r.get("id")))
        if mine and piece.detections:
            piece = replace(piece, detections=tuple(replace(d, attributes=mine) for d in piece.detections))
        pieces.append(piece)
    return merge(pieces)


__all__ = ["REGISTRY", "Conversion", "RegionHandler", "answer_from_results", "convert_for", "handler_for"]
