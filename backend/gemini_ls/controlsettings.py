"""A control's `model_*` attributes as plain settings (`ControlSettings`), each falling back to an
environment default (`Defaults`): the value parsing of labelconfig.py, apart so that module stays
about tags."""

from __future__ import annotations

from dataclasses import dataclass

from .textunits import parse_granularity
from .tiling.grid import parse_tiling


class LabelConfigError(ValueError):
    """The label config cannot drive predictions (empty, invalid XML, no image, no image control)."""



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


DEFAULTS = Defaults()


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
    ocr_granularity: str | None = None  # model_ocr_granularity: line | word | block (textunits.py)


def number_attr(attr: dict, key: str, default: float, lo: float, hi: float) -> float:
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


def text_attr(attr: dict, key: str) -> str | None:
    value = attr.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def control_settings(attr: dict, defaults: Defaults) -> ControlSettings:
    return ControlSettings(
        score_threshold=number_attr(attr, "model_score_threshold", defaults.score_threshold, 0.0, 1.0),
        max_objects=int(number_attr(attr, "model_max_objects", defaults.max_objects, 1, 1000)),
        mask_threshold=int(number_attr(attr, "model_mask_threshold", defaults.mask_threshold, 0, 254)),
        polygon_tolerance=number_attr(attr, "model_polygon_tolerance", defaults.polygon_tolerance, 0.0, 1000.0),
        min_area=int(number_attr(attr, "model_min_area", defaults.min_area, 0, 1e9)),
        prompt=text_attr(attr, "model_prompt"),
        model_name=text_attr(attr, "model_name"),
        model_mask_name=text_attr(attr, "model_mask_name"),
        tiling=_tiling(attr, defaults.tiling),
        media_resolution=_media_resolution(attr, defaults.media_resolution),
        ocr_granularity=_granularity(attr),
    )


def _granularity(attr: dict) -> str | None:
    try:
        return parse_granularity(text_attr(attr, "model_ocr_granularity"))
    except ValueError as exc:
        raise LabelConfigError(str(exc)) from exc


MEDIA_RESOLUTIONS = ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH")  # ULTRA_HIGH: per image part, Gemini 3 only


def _tiling(attr: dict, default: str) -> str:
    raw = text_attr(attr, "model_tiling")
    if raw is None:
        return default
    try:
        mode, shape = parse_tiling(raw)
    except ValueError as exc:
        raise LabelConfigError(f"model_tiling: {exc}") from exc
    return f"{shape[0]}x{shape[1]}" if shape else mode


def _media_resolution(attr: dict, default: str | None) -> str | None:
    raw = text_attr(attr, "model_media_resolution")
    if raw is None:
        return default
    if raw.upper() not in MEDIA_RESOLUTIONS:
        raise LabelConfigError(f"model_media_resolution={raw!r}: one of {', '.join(MEDIA_RESOLUTIONS)}")
    return raw.upper()
