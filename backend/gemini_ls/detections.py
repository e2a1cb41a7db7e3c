"""Typed, Label-Studio-independent values for what Gemini saw.

Everything here is plain data: the parser produces it, the region converters consume it.
Coordinates stay in Gemini's own frame (0-1000, y before x on the wire, named fields here)
until a converter maps them onto a concrete image size.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

AttributeValue = str | tuple[str, ...] | float | int

NORM = 1000.0  # Gemini normalises every coordinate to 0..1000 of the image it was sent.


class RequestKind(str, enum.Enum):
    """What a control needs Gemini to produce. MASKS answers carry boxes too."""

    BOXES = "boxes"
    MASKS = "masks"
    POINTS = "points"
    CHOICE = "choice"
    TEXT = "text"
    NUMBER = "number"  # Number / Rating on the whole image: one number (imagequestions.py)

    @property
    def per_task(self) -> bool:
        """Answered once for the whole task (all its images in one prompt), not per image."""
        return self in (RequestKind.CHOICE, RequestKind.TEXT, RequestKind.NUMBER)

    @property
    def spatial(self) -> bool:
        """Answered with boxes (and masks): rectangle, brush and polygon controls."""
        return self in (RequestKind.BOXES, RequestKind.MASKS)


# Why an item of an answer, or a detection meant for a control, gave no region. The parser counts
# the first group, the region converters the second; both end up in gemini_ls_items_dropped_total
# (bad_mask in gemini_ls_masks_dropped_total). A Literal so that a misspelt reason is a type error.
DropReason = Literal[
    # parser (gemini/parse.py)
    "unknown_label",  # a label the project does not have; never invented
    "bad_box",  # not 4 numbers, or zero area after clamping
    "bad_mask",  # the detection keeps its box, the mask is unusable (<seg_N> tokens, not a PNG, ...)
    "bad_point",  # not [y, x]
    "not_an_object",  # an item that is not a JSON object, or an answer that is no list
    "truncated_item",  # the item cut off by MAX_TOKENS
    "no_json",  # an answer with text but no JSON value in it
    "extra_choice",  # more than one choice for a single-choice control
    "stray_image_index",  # an image_index outside the request's images (the detection is kept, as image 0)
    "out_of_range",  # a Number / Rating answer outside the control's min..max (or not a whole number of stars)
    # region converters (regions/)
    "below_score",
    "over_max_objects",
    "no_box",
    "no_mask",
    "empty_mask",
    "invalid_region",  # Label Studio's own validator rejected the region
]
DROP_REASONS: tuple[DropReason, ...] = get_args(DropReason)


@dataclass(frozen=True)
class NormBox:
    """A box in Gemini's 0-1000 frame, already clamped to 0..1000 and ordered (min < max)."""

    ymin: float
    xmin: float
    ymax: float
    xmax: float

    @property
    def area(self) -> float:
        return max(0.0, self.ymax - self.ymin) * max(0.0, self.xmax - self.xmin)

    @classmethod
    def from_corners(cls, y0: float, x0: float, y1: float, x1: float) -> NormBox | None:
        """Two opposite corners in any order -> a clamped, ordered box; None if it has no area."""
        y0, x0, y1, x1 = (min(max(v, 0.0), NORM) for v in (y0, x0, y1, x1))
        box = cls(ymin=min(y0, y1), xmin=min(x0, x1), ymax=max(y0, y1), xmax=max(x0, x1))
        return box if box.area > 0 else None

    def to_percent(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) in percent of the image, Label Studio's rectangle frame."""
        return (
            self.xmin / 10.0,
            self.ymin / 10.0,
            (self.xmax - self.xmin) / 10.0,
            (self.ymax - self.ymin) / 10.0,
        )

    def to_pixels(self, width: int, height: int) -> PixelBox:
        """The pixel rectangle [x0, x1) x [y0, y1) this box covers in a width x height image.

        Rounded outward-to-nearest and kept at least one pixel wide so a thin object never vanishes.
        """
        x0 = int(round(self.xmin / NORM * width))
        x1 = int(round(self.xmax / NORM * width))
        y0 = int(round(self.ymin / NORM * height))
        y1 = int(round(self.ymax / NORM * height))
        x0 = min(max(x0, 0), width - 1)
        y0 = min(max(y0, 0), height - 1)
        x1 = min(max(x1, x0 + 1), width)
        y1 = min(max(y1, y0 + 1), height)
        return PixelBox(x0, y0, x1, y1)


@dataclass(frozen=True)
class PixelBox:
    """Half-open pixel rectangle: columns x0..x1-1, rows y0..y1-1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@dataclass(frozen=True)
class NormPoint:
    """A point in Gemini's 0-1000 frame (clamped)."""

    y: float
    x: float

    def to_percent(self) -> tuple[float, float]:
        return self.x / 10.0, self.y / 10.0


@dataclass(frozen=True)
class PolygonMask:
    """A mask sent as outlines (3.x and Robotics-ER 1.6): rings of (x, y) in the 0-1000 frame of the
    whole image, each ring one part of the object (their union is the mask; at least 3 points each)."""

    rings: tuple[tuple[tuple[float, float], ...], ...]

    def bounds(self) -> NormBox:
        xs = [x for ring in self.rings for x, _ in ring]
        ys = [y for ring in self.rings for _, y in ring]
        return NormBox(ymin=min(ys), xmin=min(xs), ymax=max(ys), xmax=max(xs))


@dataclass(frozen=True, eq=False)
class Detection:
    """One object Gemini reported, mapped to a label of the project.

    Its mask comes in one of two variants, by model family: `mask`, Gemini's probability map
    (uint8, 0..255) covering only `box` at whatever resolution Gemini sent it (256x256 in
    practice), or `polygon`, outlines in image coordinates. Both None when no usable mask came back.
    """

    label: str
    raw_label: str
    box: NormBox | None = None
    point: NormPoint | None = None
    mask: np.ndarray | None = None
    score: float | None = None
    image_index: int = 0
    polygon: PolygonMask | None = None
    # the project label Gemini's text matched before a learned synonym renamed it to `label` (None:
    # as `label`); the learned score threshold is the answered label's (regions/selection.py)
    answered: str | None = None
    # per-region controls' answers for this region (control name, value): str for a TextArea, a tuple
    # of option values for Choices, a float for Number, an int for Rating; only valid values
    attributes: tuple[tuple[str, AttributeValue], ...] = ()

    def attribute(self, name: str) -> AttributeValue | None:
        return next((value for key, value in self.attributes if key == name), None)

    @property
    def threshold_label(self) -> str:
        return self.answered or self.label

    @property
    def has_mask(self) -> bool:
        return self.box is not None and (self.mask is not None or self.polygon is not None)


@dataclass(frozen=True)
class ParsedAnswer:
    """What one Gemini reply amounted to after robust parsing.

    `dropped` counts items that could not be used, by `DropReason` ("bad_mask" counts detections
    that kept their box but lost a degenerate mask). `finish_reason` is the provider's word for
    why the answer ended (e.g. "MAX_TOKENS" when `truncated`), for the log.
    """

    detections: tuple[Detection, ...] = ()
    choices: tuple[str, ...] = ()
    text: str | None = None
    number: float | None = None  # a Number / Rating answer, already within the control's bounds
    answers: tuple[tuple[str, str], ...] = ()  # (TextArea name, its answer) of questions asked together (VQA)
    truncated: bool = False
    dropped: Mapping[DropReason, int] = field(default_factory=dict)
    finish_reason: str | None = None
    # Box-sized masks derived from `detections`, memoised so the brush and polygon controls sharing
    # this answer resize and threshold each probability map once (regions.masks.shared_mask_region).
    derived: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ImageMeta:
    """An image as Label Studio shows it: the result's `to_name` and `original_width/height`."""

    name: str
    width: int
    height: int
