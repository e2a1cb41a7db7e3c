"""The contract every control-type converter follows, and the value it returns.

Design for detections a control cannot use (e.g. a BrushLabels detection whose mask was
degenerate, so `Detection.mask is None`): they are never padded into a fake region (a filled
box is not a segmentation, and a reviewer could not tell it from a real mask). They are left
out and counted in `Conversion.dropped` by reason, so the caller can report them in metrics
and logs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from ..detections import Detection, DropReason, ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec

# Reasons a detection meant for a control produced no region (keys of Conversion.dropped).
BELOW_SCORE: DropReason = "below_score"  # score known and under model_score_threshold
OVER_LIMIT: DropReason = "over_max_objects"  # beyond model_max_objects (lowest scores go first)
NO_BOX: DropReason = "no_box"  # rectangle without a box; keypoint without a point or a box
NO_MASK: DropReason = "no_mask"  # brush/polygon detection whose mask was unusable (box only)
EMPTY_MASK: DropReason = "empty_mask"  # mask left nothing after thresholding / min_area


@dataclass(frozen=True)
class Conversion:
    """Label Studio results for one control on one image, plus what was dropped and why.

    `sources`: for region results, the detection each came from (parallel to `results`), so that
    the per-region controls' answers can follow their region (perregion.py); empty otherwise."""

    results: tuple[dict, ...] = ()
    dropped: Mapping[DropReason, int] = field(default_factory=lambda: MappingProxyType({}))
    sources: tuple[Detection, ...] = ()

    @staticmethod
    def of(results: list[dict], dropped: Counter[DropReason] | None = None,
           sources: list[Detection] | None = None) -> Conversion:
        counts = {k: v for k, v in (dropped or {}).items() if v}
        if sources is not None and len(sources) != len(results):
            raise ValueError("a region result without its detection")
        return Conversion(tuple(results), MappingProxyType(counts), tuple(sources or ()))


class RegionHandler(Protocol):
    """Turns a parsed Gemini answer into results for one control type (`tag`), and back: `reverse`
    reads one Label Studio result of that type (an annotator's region) as the typed answer it stands
    for (empty when it holds nothing usable), with its detections on image `image_index`."""

    tag: str

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion: ...

    def reverse(self, result: Mapping[str, Any], image_index: int) -> ParsedAnswer: ...
