"""What a Label Studio project asks for: its <Image> objects and the image controls bound to them.

Parsing uses the SDK's `LabelInterface`; this module turns its tags into frozen specs that the
rest of the pipeline can use without knowing Label Studio's XML.

Per-control attributes follow the `model_*` convention of Label Studio's ML examples; every one
falls back to an environment default (see `Defaults`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from label_studio_sdk.label_interface import LabelInterface

from .detections import RequestKind
from .tiling.grid import parse_tiling


class LabelConfigError(ValueError):
    """The label config cannot drive predictions (empty, invalid XML, no image, no image control)."""


# Label Studio tag name -> (result type, what Gemini must produce)
CONTROL_KINDS: dict[str, tuple[str, RequestKind]] = {
    "RectangleLabels": ("rectanglelabels", RequestKind.BOXES),
    "BrushLabels": ("brushlabels", RequestKind.MASKS),
    "PolygonLabels": ("polygonlabels", RequestKind.MASKS),
    "KeyPointLabels": ("keypointlabels", RequestKind.POINTS),
    "Choices": ("choices", RequestKind.CHOICE),
    "TextArea": ("textarea", RequestKind.TEXT),
}


@dataclass(frozen=True)
class Defaults:
    """Environment-level defaults for per-control `model_*` attributes."""

    score_threshold: float = 0.0
    max_objects: int = 25
    mask_threshold: int = 127
    polygon_tolerance: float = 1.0  # pixels, Douglas-Peucker epsilon
    min_area: int = 16  # pixels; smaller mask specks give no polygon
    tiling: str = "off"  # TILING: off | auto | RxC (tiling/grid.py)
    media_resolution: str | None = None  # GEMINI_MEDIA_RESOLUTION, None: the model's default


@dataclass(frozen=True)
class LabelSpec:
    """A `<Label>` or `<Choice>`; `hint` (Label Studio's hover text) describes it to Gemini."""

    value: str
    hint: str | None = None

    @property
    def description(self) -> str:
        return self.hint or self.value


@dataclass(frozen=True)
class ControlSettings:
    score_threshold: float
    max_objects: int
    mask_threshold: int
    polygon_tolerance: float
    min_area: int
    prompt: str | None = None
    # model_name / model_mask_name: this control's Gemini model for its non-mask / mask requests
    # (None: GEMINI_MODEL / GEMINI_MASK_MODEL), see gemini/models.py.
    model_name: str | None = None
    model_mask_name: str | None = None
    # model_tiling / model_media_resolution (TILING / GEMINI_MEDIA_RESOLUTION when absent): how a
    # spatial request cuts the image into tiles, and the media resolution each image part is sent at.
    # Part of model_version only when set (modelversion.py), so versions made before they existed hold.
    tiling: str = "off"
    media_resolution: str | None = None


@dataclass(frozen=True)
class LabelTuning:
    """What the review loop learned for a control's labels (review/learning.py `LearnedState.applied`),
    part of the effective spec so that every path that predicts applies it:
    - thresholds: (label, score) pairs, a per-label floor beside model_score_threshold, applied where
      regions are selected (regions/selection.py) to the label Gemini answered (before a synonym);
    - synonyms: (answered, wanted) pairs, applied where Gemini's text is matched to a label
      (gemini/labels.py `LabelMatcher`): an answered "A" becomes the control's label "B".
    Not a label config setting: its digest is the learned tag of model_version (`ProjectSpec.learned_tag`)."""

    thresholds: tuple[tuple[str, float], ...] = ()
    synonyms: tuple[tuple[str, str], ...] = ()

    def threshold(self, label: str) -> float:
        return next((t for name, t in self.thresholds if name == label), 0.0)


@dataclass(frozen=True)
class ControlSpec:
    name: str
    tag: str  # e.g. "RectangleLabels"
    result_type: str  # e.g. "rectanglelabels"
    kind: RequestKind
    to_names: tuple[str, ...]
    labels: tuple[LabelSpec, ...]
    settings: ControlSettings
    multiple: bool = False  # Choices: choice="multiple"
    smart: bool = False  # smart="true" / smartOnly="true": an interactive prompting tool
    tuning: LabelTuning = LabelTuning()  # learned by the review loop; empty as parsed


@dataclass(frozen=True)
class ImageSpec:
    name: str  # the object's name, a result's to_name
    value_key: str  # the task data key, "image" for value="$image"


@dataclass(frozen=True)
class ProjectSpec:
    images: tuple[ImageSpec, ...]
    controls: tuple[ControlSpec, ...]
    ignored_controls: tuple[str, ...] = field(default=())  # names of controls this backend cannot fill
    # The same controls as "<name> (<Tag>): why", logged once per config so that a user learns why,
    # e.g., an EllipseLabels control got nothing.
    ignored_reasons: tuple[str, ...] = field(default=())
    interface: LabelInterface | None = field(default=None, compare=False, repr=False)
    # the review loop's learned state this spec carries (its controls' `tuning`, and the few-shot
    # example set the FewShotBook finds by model_version): "l<digest>[-e<digest>]", None as parsed
    learned_tag: str | None = None

    def image(self, name: str) -> ImageSpec:
        for img in self.images:
            if img.name == name:
                return img
        raise KeyError(name)


def _float(attr: dict, key: str, default: float, lo: float, hi: float) -> float:
    raw = attr.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise LabelConfigError(f"{key}={raw!r} is not a number") from exc
    if not lo <= value <= hi:
        raise LabelConfigError(f"{key}={raw!r} is outside {lo}..{hi}")
    return value


def _text(attr: dict, key: str) -> str | None:
    value = attr.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _settings(attr: dict, defaults: Defaults) -> ControlSettings:
    return ControlSettings(
        score_threshold=_float(attr, "model_score_threshold", defaults.score_threshold, 0.0, 1.0),
        max_objects=int(_float(attr, "model_max_objects", defaults.max_objects, 1, 1000)),
        mask_threshold=int(_float(attr, "model_mask_threshold", defaults.mask_threshold, 0, 254)),
        polygon_tolerance=_float(attr, "model_polygon_tolerance", defaults.polygon_tolerance, 0.0, 1000.0),
        min_area=int(_float(attr, "model_min_area", defaults.min_area, 0, 1e9)),
        prompt=_text(attr, "model_prompt"),
        model_name=_text(attr, "model_name"),
        model_mask_name=_text(attr, "model_mask_name"),
        tiling=_tiling(attr, defaults.tiling),
        media_resolution=_media_resolution(attr, defaults.media_resolution),
    )


MEDIA_RESOLUTIONS = ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH")  # ULTRA_HIGH: per image part, Gemini 3 only


def _tiling(attr: dict, default: str) -> str:
    raw = _text(attr, "model_tiling")
    if raw is None:
        return default
    try:
        mode, shape = parse_tiling(raw)
    except ValueError as exc:
        raise LabelConfigError(f"model_tiling: {exc}") from exc
    return f"{shape[0]}x{shape[1]}" if shape else mode


def _media_resolution(attr: dict, default: str | None) -> str | None:
    raw = _text(attr, "model_media_resolution")
    if raw is None:
        return default
    if raw.upper() not in MEDIA_RESOLUTIONS:
        raise LabelConfigError(f"model_media_resolution={raw!r}: one of {', '.join(MEDIA_RESOLUTIONS)}")
    return raw.upper()


def parse_label_config(config: str | None, defaults: Defaults = Defaults()) -> ProjectSpec:
    """Parse a label config into the images and image controls we can fill.

    Raises LabelConfigError with a message fit for a Label Studio user when the config cannot
    drive predictions at all.
    """
    if not config or not config.strip():
        raise LabelConfigError("the label config is empty")
    try:
        interface = LabelInterface(config)
    except Exception as exc:  # the SDK raises assorted XML/parse errors
        raise LabelConfigError(f"the label config is not valid XML: {exc}") from exc

    images = tuple(
        ImageSpec(name=o.name, value_key=(o.value or "").lstrip("$") or o.name)
        for o in interface.objects
        if o.tag == "Image"
    )
    if not images:
        raise LabelConfigError("the label config has no <Image> object to predict on")
    image_names = {i.name for i in images}

    controls: list[ControlSpec] = []
    ignored: list[str] = []
    for control in interface.controls:
        kind = CONTROL_KINDS.get(control.tag)
        to_names = tuple(n for n in (control.to_name or []) if n in image_names)
        if kind is None:
            supported = ", ".join(CONTROL_KINDS)
            ignored.append(f"{control.name} (<{control.tag}>): not a control type this backend fills (supported: {supported})")
            continue
        if not to_names:
            ignored.append(f"{control.name} (<{control.tag}>): not bound to an <Image> (toName={control.to_name})")
            continue
        labels_attrs = getattr(control, "labels_attrs", None) or {}
        labels = tuple(
            LabelSpec(value=value, hint=(tag.attr.get("hint") or None) if tag is not None else None)
            for value, tag in ((v, labels_attrs.get(v)) for v in (getattr(control, "labels", None) or []))
        )
        result_type, request_kind = kind
        if request_kind not in (RequestKind.TEXT,) and not labels:
            ignored.append(f"{control.name} (<{control.tag}>): has no labels or choices")
            continue
        controls.append(
            ControlSpec(
                name=control.name,
                tag=control.tag,
                result_type=result_type,
                kind=request_kind,
                to_names=to_names,
                labels=labels,
                settings=_settings(control.attr or {}, defaults),
                multiple=(control.attr or {}).get("choice") == "multiple",
                smart=any(str((control.attr or {}).get(k, "")).lower() == "true" for k in ("smart", "smartOnly")),
            )
        )
    if not controls:
        raise LabelConfigError(
            f"the label config has no image control this backend can fill (supported: {', '.join(CONTROL_KINDS)} bound to an <Image>)"
        )
    return ProjectSpec(
        images=images,
        controls=tuple(controls),
        interface=interface,
        ignored_controls=tuple(text.split(" ", 1)[0] for text in ignored),
        ignored_reasons=tuple(ignored),
    )
