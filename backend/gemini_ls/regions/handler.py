"""The contract every control-type converter follows, and the value it returns.

Design for detections a control cannot use (e.g. a BrushLabels detection whose mask was
degenerate, so `Detection.mask is None`): they are never padded into a fake region (a filled
box is not a segmentation, and a reviewer could not tell it from a real mask). They are left
out and counted in `Conversion.dropped` by reason, so the caller can report them in metrics
and logs. `to_results` is the plain list for callers that do not count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from ..detections import ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec

# Reasons a detection meant for a control produced no region (keys of Conversion.dropped).
BELOW_SCORE = "below_score"  # score known and under model_score_threshold
OVER_LIMIT = "over_max_objects"  # beyond model_max_objects (lowest scores go first)
NO_BOX = "no_box"  # rectangle without a box; keypoint without a point or a box
NO_MASK = "no_mask"  # brush/polygon detection whose mask was unusable (box only)
EMPTY_MASK = "empty_mask"  # mask left nothing after thresholding / min_area


@dataclass(frozen=True)
class Conversion:
    """Label Studio results for one control on one image, plus what was dropped and why."""

    results: tuple[dict, ...] = ()
    dropped: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @staticmethod
    def of(results: list[dict], dropped: Counter[str] | None = None) -> Conversion:
        counts = {k: v for k, v in (dropped or {}).items() if v}
        return Conversion(tuple(results), MappingProxyType(counts))

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class RegionHandler(Protocol):
    """Turns a parsed Gemini answer into results for one control type (`tag`)."""

    tag: str

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion: ...

    def to_results(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> list[dict]: ...


class HandlerBase:
    """Shared `to_results`: the results of `convert`, without the counts."""

    tag: str = ""

    def convert(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> Conversion:
        raise NotImplementedError

    def to_results(self, control: ControlSpec, image: ImageMeta, answer: ParsedAnswer) -> list[dict]:
        return list(self.convert(control, image, answer).results)
