"""Which detections of an answer go to one control on one image, after the control's settings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..detections import Detection, DropReason, ImageMeta, ParsedAnswer
from ..labelconfig import ControlSpec
from .handler import BELOW_SCORE, OVER_LIMIT


@dataclass(frozen=True)
class Selection:
    detections: tuple[Detection, ...]
    dropped: Counter[DropReason]


def image_index(control: ControlSpec, image: ImageMeta) -> int:
    """Position of the image among the control's toName objects (Detection.image_index)."""
    try:
        return control.to_names.index(image.name)
    except ValueError:
        raise ValueError(f"image {image.name!r} is not a target of control {control.name!r}") from None


def select(
    control: ControlSpec,
    image: ImageMeta,
    answer: ParsedAnswer,
    usable: Callable[[Detection], DropReason | None] = lambda d: None,
) -> Selection:
    """Detections for this control and image, filtered and capped by the control's settings.

    Detections of other labels (another control sharing the answer) or of another image are
    not this control's and are not counted. `usable` returns a drop reason for a detection the
    handler cannot convert at all (e.g. no mask); those are dropped before the cap so they do
    not take a slot from a usable one. The kept ones stay in Gemini's order.
    """
    labels = {label.value for label in control.labels}
    index = image_index(control, image)
    settings = control.settings
    dropped: Counter[DropReason] = Counter()
    kept: list[Detection] = []
    for det in answer.detections:
        if det.label not in labels or det.image_index != index:
            continue
        # model_score_threshold, and the review loop's learned floor for the label Gemini answered
        # (labelconfig.LabelTuning, part of the effective spec)
        floor = max(settings.score_threshold, control.tuning.threshold(det.threshold_label))
        if det.score is not None and det.score < floor:
            dropped[BELOW_SCORE] += 1
            continue
        reason = usable(det)
        if reason is not None:
            dropped[reason] += 1
            continue
        kept.append(det)
    if len(kept) > settings.max_objects:
        # Highest scores first; unknown scores rank below known ones; ties keep Gemini's order.
        ranked = sorted(range(len(kept)), key=lambda i: (kept[i].score is None, -(kept[i].score or 0.0), i))
        chosen = sorted(ranked[: settings.max_objects])
        dropped[OVER_LIMIT] += len(kept) - len(chosen)
        kept = [kept[i] for i in chosen]
    return Selection(tuple(kept), dropped)
