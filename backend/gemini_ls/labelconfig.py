"""What a Label Studio project asks for: its <Image> objects and the image controls bound to them.

Parsing uses the SDK's `LabelInterface`; this module turns its tags into frozen specs that the
rest of the pipeline can use without knowing Label Studio's XML.

Per-control attributes follow the `model_*` convention of Label Studio's ML examples; every one
falls back to an environment default (see `Defaults`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from label_studio_sdk.label_interface import LabelInterface

from . import imagequestions as whole
from .controlsettings import DEFAULTS, control_settings, text_attr
from .controlsettings import MEDIA_RESOLUTIONS as MEDIA_RESOLUTIONS
from .controlsettings import ControlSettings as ControlSettings
from .controlsettings import Defaults as Defaults
from .controlsettings import LabelConfigError as LabelConfigError
from .detections import RequestKind
from .scoremap import ScoreMap
from .textunits import TEXT_MAX_OBJECTS, text_unit

# The control-tag table. Label Studio tag name -> (result type, what Gemini must produce).
# The bare shape tools (Rectangle, Polygon, ...) draw the regions of a `<Labels>` on the same image:
# each region is a shape result plus a `labels` result sharing its id (SHAPE_TAGS, see
# `_shape_controls`), the form of Label Studio's own OCR template and examples.
CONTROL_KINDS: dict[str, tuple[str, RequestKind]] = {
    "RectangleLabels": ("rectanglelabels", RequestKind.BOXES),
    "BrushLabels": ("brushlabels", RequestKind.MASKS),
    "PolygonLabels": ("polygonlabels", RequestKind.MASKS),
    "KeyPointLabels": ("keypointlabels", RequestKind.POINTS),
    "EllipseLabels": ("ellipselabels", RequestKind.BOXES),
    "Rectangle": ("rectangle", RequestKind.BOXES),
    "Polygon": ("polygon", RequestKind.MASKS),
    "Brush": ("brush", RequestKind.MASKS),
    "KeyPoint": ("keypoint", RequestKind.POINTS),
    "Ellipse": ("ellipse", RequestKind.BOXES),
    "Choices": ("choices", RequestKind.CHOICE),
    "TextArea": ("textarea", RequestKind.TEXT),
    "Number": ("number", RequestKind.NUMBER), "Rating": ("rating", RequestKind.NUMBER), "Taxonomy": ("taxonomy", RequestKind.CHOICE),
}
SHAPE_TAGS = ("Rectangle", "Polygon", "Ellipse", "KeyPoint", "Brush")
LABELS_TAG = "Labels"

# Per-region controls (perRegion="true"): tag -> (result type, the key of its value). Asked in the
# same request as the regions they describe, one answer per region (`AttributeSpec`).
ATTRIBUTE_KINDS: dict[str, tuple[str, str]] = {
    "TextArea": ("textarea", "text"),
    "Choices": ("choices", "choices"),
    "Number": ("number", "number"),
    "Rating": ("rating", "rating"),
}


@dataclass(frozen=True)
class LabelSpec:
    """A `<Label>` or `<Choice>`; `hint` (Label Studio's hover text) describes it to Gemini."""

    value: str
    hint: str | None = None
    # labels from the task (dynlabels.py): the picture its `html` shows (`<img src=...>`), sent to
    # Gemini next to the label's name as a reference image
    reference: str | None = None
    path: tuple[str, ...] = ()  # a Taxonomy node: its path from the root (`value` is the path joined)

    @property
    def description(self) -> str:
        return self.hint or self.value


@dataclass(frozen=True)
class LabelTuning:
    """What the review loop learned for a control's labels (review/learning.py `LearnedState.applied`),
    part of the effective spec so that every path that predicts applies it:
    - thresholds: (label, score) pairs, a per-label floor beside model_score_threshold, applied where
      regions are selected (regions/selection.py) to the label Gemini answered (before a synonym);
    - synonyms: (answered, wanted) pairs, applied where Gemini's text is matched to a label
      (gemini/labels.py `LabelMatcher`): an answered "A" becomes the control's label "B".
    - calibration: (label, ScoreMap) pairs, the region `score` becomes the map of Gemini's
      confidence (predict.py); a label without its own pair uses `calibration_default`.
    Not a label config setting: its digest is the learned tag of model_version (`ProjectSpec.learned_tag`)."""

    thresholds: tuple[tuple[str, float], ...] = ()
    synonyms: tuple[tuple[str, str], ...] = ()
    calibration: tuple[tuple[str, ScoreMap], ...] = ()
    calibration_default: ScoreMap | None = None

    def threshold(self, label: str) -> float:
        return next((t for name, t in self.thresholds if name == label), 0.0)

    def score_map(self, label: str) -> ScoreMap | None:
        """The calibration of `label`'s regions, None when none was learned (the score stays Gemini's)."""
        return next((m for name, m in self.calibration if name == label), self.calibration_default)


@dataclass(frozen=True)
class AttributeSpec:
    """A per-region control (`perRegion="true"`): one value per region of the controls on its image,
    answered in the same JSON item as the region's box and label (under "attributes", by `name`).

    `when_tag` / `when_labels` are Label Studio's whenTagName / whenLabelValue: the attribute belongs
    only to regions of that labels control / with one of those labels (the editor shows it for them
    only), so Gemini is asked for it only there. `display_mode` (displayMode) only moves the control
    in the editor; the result is the same either way."""

    name: str
    tag: str  # TextArea | Choices | Number | Rating
    question: str | None = None  # model_prompt, else the placeholder / hint text
    options: tuple[LabelSpec, ...] = ()  # Choices
    multiple: bool = False  # Choices: choice="multiple"
    minimum: float | None = None  # Number: min; Rating: 1
    maximum: float | None = None  # Number: max; Rating: maxRating (default 5)
    when_tag: str | None = None
    when_labels: tuple[str, ...] = ()
    display_mode: str | None = None

    @property
    def result_type(self) -> str:
        return ATTRIBUTE_KINDS[self.tag][0]

    @property
    def value_key(self) -> str:
        return ATTRIBUTE_KINDS[self.tag][1]

    def applies(self, control: ControlSpec, label: str) -> bool:
        """Whether a region of `control` labelled `label` carries this attribute."""
        if self.when_tag and self.when_tag not in (control.name, control.labels_from):
            return False
        return not self.when_labels or label in self.when_labels

    def labels_for(self, control: ControlSpec) -> tuple[str, ...] | None:
        """The labels of `control` this attribute is asked for: None for all, () for none."""
        if self.when_tag and self.when_tag not in (control.name, control.labels_from):
            return ()
        if not self.when_labels:
            return None
        return tuple(label.value for label in control.labels if label.value in self.when_labels)


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
    # a bare shape tool (SHAPE_TAGS): the `<Labels>` control whose labels its regions carry, as a
    # `labels` result sharing the region's id
    labels_from: str | None = None
    attributes: tuple[AttributeSpec, ...] = ()  # the per-region controls its regions carry
    # value="$field": its labels are read per task from data[field] (dynlabels.py), after its static ones
    labels_field: str | None = None
    question: whole.TextQuestion | None = None  # a TextArea answering a <Text> question about the image (VQA)
    scale: whole.Scale | None = None  # Number / Rating on the whole image: the answer's bounds


@dataclass(frozen=True)
class ImageSpec:
    name: str  # the object's name, a result's to_name
    value_key: str  # the task data key, "image" for value="$image"
    value_list: bool = False  # valueList="$pages": the key holds a list of page images (pages.py)


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


def _labels(control: Any) -> tuple[LabelSpec, ...]:
    labels_attrs = getattr(control, "labels_attrs", None) or {}
    return tuple(
        LabelSpec(value=value, hint=(tag.attr.get("hint") or None) if tag is not None else None)
        for value, tag in ((v, labels_attrs.get(v)) for v in (getattr(control, "labels", None) or []))
    )


def _loose_float(attr: dict, key: str) -> float | None:
    """An optional bound (Number's min/max): what Label Studio's editor would not enforce either is ignored."""
    try:
        value = float(attr[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _labels_field(control: Any) -> str | None:
    """The task data key of a labels control's dynamic labels (value="$objects" -> "objects")."""
    value = text_attr(control.attr or {}, "value")
    return value[1:] if value and value.startswith("$") and len(value) > 1 else None


def _per_region(control: Any) -> bool:
    return str((control.attr or {}).get("perRegion", "")).lower() == "true"


def _attributes(
    interface: LabelInterface, image_names: set[str]
) -> tuple[dict[str, tuple[AttributeSpec, tuple[str, ...]]], set[str], list[str]]:
    """The per-region controls: (usable ones by name with their images, names of all, why some are not)."""
    found: dict[str, tuple[AttributeSpec, tuple[str, ...]]] = {}
    names: set[str] = set()
    ignored: list[str] = []
    for control in interface.controls:
        if not _per_region(control):
            continue
        names.add(control.name)
        attr = control.attr or {}
        to_names = tuple(n for n in (control.to_name or []) if n in image_names)
        if control.tag not in ATTRIBUTE_KINDS:
            ignored.append(f"{control.name} (<{control.tag}>): not a per-region control this backend fills "
                           f"(supported per region: {', '.join(ATTRIBUTE_KINDS)})")
            continue
        if not to_names:
            ignored.append(f"{control.name} (<{control.tag}>): not bound to an <Image> (toName={control.to_name})")
            continue
        options = _labels(control)
        if control.tag == "Choices" and not options:
            ignored.append(f"{control.name} (<{control.tag}>): has no labels or choices")
            continue
        rating = control.tag == "Rating"
        found[control.name] = (
            AttributeSpec(
                name=control.name,
                tag=control.tag,
                question=text_attr(attr, "model_prompt") or text_attr(attr, "placeholder") or text_attr(attr, "hint"),
                options=options,
                multiple=attr.get("choice") == "multiple",
                minimum=1.0 if rating else _loose_float(attr, "min"),
                maximum=(_loose_float(attr, "maxRating") or 5.0) if rating else _loose_float(attr, "max"),
                when_tag=text_attr(attr, "whenTagName"),
                when_labels=tuple(v.strip() for v in str(attr.get("whenLabelValue") or "").split(",") if v.strip()),
                display_mode=text_attr(attr, "displayMode"),
            ),
            to_names,
        )
    return found, names, ignored


def _shape_drawers(interface: LabelInterface, image_names: set[str]) -> dict[tuple[str, str], str]:
    """(a <Labels>' name, an image) -> the shape tool that draws its regions there: the first one in
    the config bound to that image. One shape per region: the OCR template offers a Rectangle and a
    Polygon for the same labels, and a text line predicted as both would be two regions."""
    shapes = [c for c in interface.controls if c.tag in SHAPE_TAGS and not _per_region(c)]
    drawers: dict[tuple[str, str], str] = {}
    for control in interface.controls:
        if control.tag != LABELS_TAG or _per_region(control) or not (_labels(control) or _labels_field(control)):
            continue
        for image in (n for n in (control.to_name or []) if n in image_names):
            shape = next((s for s in shapes if image in (s.to_name or [])), None)
            if shape is not None:
                drawers[(control.name, image)] = shape.name
    return drawers


def _drawn_by(shape: str, drawers: dict[tuple[str, str], str]) -> list[tuple[str, tuple[str, ...]]]:
    """(labels control, its images) whose regions `shape` draws, in the config's order."""
    out: dict[str, list[str]] = {}
    for (labels, image), drawer in drawers.items():
        if drawer == shape:
            out.setdefault(labels, []).append(image)
    return [(labels, tuple(images)) for labels, images in out.items()]


def _shape_problem(control: Any, drawers: dict[tuple[str, str], str]) -> str | None:
    """Why a shape tool gets no regions (None: it draws some)."""
    if _drawn_by(control.name, drawers):
        return None
    mine = set(control.to_name or [])
    taken = sorted({(labels, drawer) for (labels, image), drawer in drawers.items() if image in mine})
    if not taken:
        return f"{control.name} (<{control.tag}>): no <Labels> on its image gives its regions a label"
    labels, drawer = taken[0]
    return (f"{control.name} (<{control.tag}>): the regions of <Labels name={labels!r}> are drawn by {drawer!r}, "
            "the first shape tool on the image (one shape per region); put this tool first to get its shape")


def _attach_attributes(
    controls: list[ControlSpec], attributes: dict[str, tuple[AttributeSpec, tuple[str, ...]]]
) -> tuple[list[ControlSpec], list[str]]:
    """Each region control with the per-region controls of its image that apply to its regions."""
    used: set[str] = set()
    out = []
    for control in controls:
        if control.kind.spatial or control.kind is RequestKind.POINTS:
            mine = tuple(
                spec for spec, images in attributes.values()
                if set(images) & set(control.to_names) and spec.labels_for(control) != ()
            )
            used.update(spec.name for spec in mine)
            control = replace(control, attributes=mine) if mine else control
        out.append(control)
    unused = [
        f"{name} (<{spec.tag}>): per-region, but no region control on its image "
        + (f"matches whenTagName={spec.when_tag!r} / whenLabelValue={','.join(spec.when_labels)!r}"
           if spec.when_tag or spec.when_labels else "draws regions")
        for name, (spec, _) in attributes.items() if name not in used
    ]
    return out, unused


def _text_room(control: ControlSpec, interface: LabelInterface) -> ControlSpec:
    """A control reading text lists every line (word, block) of a page: unless its config sets
    model_max_objects, at least TEXT_MAX_OBJECTS of its unit (textunits.py)."""
    unit = text_unit(control.settings.ocr_granularity, ((a.tag, a.question) for a in control.attributes))
    if unit is None or "model_max_objects" in (interface.get_control(control.name).attr or {}):
        return control
    room = max(control.settings.max_objects, TEXT_MAX_OBJECTS[unit])
    return replace(control, settings=replace(control.settings, max_objects=room))


def parse_label_config(config: str | None, defaults: Defaults = DEFAULTS) -> ProjectSpec:
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
        ImageSpec(name=o.name, value_key=(o.value or "").lstrip("$") or o.name, value_list=bool((o.attr or {}).get("valueList")))
        for o in interface.objects
        if o.tag == "Image"
    )
    if not images:
        raise LabelConfigError("the label config has no <Image> object to predict on")
    image_names = {i.name for i in images}

    attributes, per_region, ignored = _attributes(interface, image_names)
    drawers = _shape_drawers(interface, image_names)
    controls: list[ControlSpec] = []
    for control in interface.controls:
        if control.name in per_region:
            continue
        kind = CONTROL_KINDS.get(control.tag)
        to_names = tuple(n for n in (control.to_name or []) if n in image_names)
        if question := whole.question_of(control, interface) if not to_names else None:  # asked about every image
            to_names = tuple(i.name for i in images)
        if control.tag == LABELS_TAG:
            if not to_names:
                ignored.append(f"{control.name} (<{control.tag}>): not bound to an <Image> (toName={control.to_name})")
            elif not any(labels == control.name for labels, _ in drawers):
                shapes = ", ".join(f"<{t}>" for t in SHAPE_TAGS)
                ignored.append(f"{control.name} (<{control.tag}>): no shape tool ({shapes}) on its image draws its regions")
            continue
        if kind is None:
            supported = ", ".join(CONTROL_KINDS)
            ignored.append(f"{control.name} (<{control.tag}>): not a control type this backend fills (supported: {supported})")
            continue
        if not to_names:
            ignored.append(f"{control.name} (<{control.tag}>): not bound to an <Image> (toName={control.to_name})")
            continue
        result_type, request_kind = kind
        if control.tag in SHAPE_TAGS:
            ignored_shape = _shape_problem(control, drawers)
            if ignored_shape:
                ignored.append(ignored_shape)
                continue
            for labels_name, drawn in _drawn_by(control.name, drawers):
                labels_control = interface.get_control(labels_name)
                controls.append(
                    ControlSpec(
                        name=control.name, tag=control.tag, result_type=result_type, kind=request_kind,
                        to_names=drawn, labels=_labels(labels_control), settings=control_settings(control.attr or {}, defaults),
                        labels_from=labels_name, labels_field=_labels_field(labels_control),
                    )
                )
            continue
        attr, labels = control.attr or {}, _labels(control)
        options = whole.taxonomy_options(interface.config, control.name, attr) if control.tag == "Taxonomy" else None
        if isinstance(options, str):  # a Taxonomy offers each node as its path (imagequestions.py)
            ignored.append(f"{control.name} (<Taxonomy>): {options}")
            continue
        labels = tuple(LabelSpec(value, hint, path=path) for value, hint, path in options) if options is not None else labels
        if request_kind not in (RequestKind.TEXT, RequestKind.NUMBER) and not labels and not _labels_field(control):
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
                settings=control_settings(whole.with_question(control.tag, control.name, attr), defaults),
                multiple=attr.get("choice") == "multiple" or whole.taxonomy_multiple(control.tag, attr),
                smart=any(str(attr.get(k, "")).lower() == "true" for k in ("smart", "smartOnly")),
                labels_field=_labels_field(control) if request_kind not in (RequestKind.TEXT, RequestKind.NUMBER) else None,
                question=question,
                scale=whole.scale_of(control.tag, attr),
            )
        )
    controls, unused = _attach_attributes(controls, attributes)
    controls = [_text_room(control, interface) for control in controls]
    ignored.extend(unused)
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
