"""How each Gemini model family answers, so routing and parsing are tested against behaviour.

Deliberately independent of the backend's model table (gemini/models.py): the emulator plays the
service, classifying the model from the URL the way the service would, and the backend must cope.

- 2.0: no thinking (any thinking config is a 400), no segmentation (masks are left out).
- 2.5 Flash / Flash-Lite / Robotics-ER 1.5: thinking_budget (0 = off); thinking_level is a 400;
  masks are base64 PNG probability maps of the box (`<seg_N>` tokens with the mask_tokens fault).
- 2.5 Pro: thinking cannot be turned off: a budget below 128 is a 400.
- 3.x: thinking_level; a budget together with a level is a 400; 3.5/3.6 refuse thinking_budget 0
  (xrblocks#474); each model accepts its own levels (3.x Pro and 3.7/3.8 Flash have no MINIMAL);
  masks come back as polygons "mask": [[x, y], ...] in 0-1000 of the image; images cost a fixed
  number of tokens per media-resolution level (per part or request-wide), not tiles.
- Every family looks at an image scaled to its token budget (`at_budget`): 3.x to its level's
  tokens (LOW 280, MEDIUM 560, HIGH 1120, ULTRA_HIGH 2240) at 28 x 28 px a token, 2.x to its
  768 px tiles; an object narrower than 10 px at that scale is not seen.
- Robotics-ER 1.6: thinking_budget, polygon masks.
- Deprecated names that Google serves with another model (gemini-3.5-flash -> gemini-3.6-flash)
  answer as that model (modelVersion says so).

The 400 texts are the service's own where they are on record (docs/gemini-models.md cites them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import cv2
import numpy as np

from . import errors, wire
from .answers import MaskEncoder, png_mask
from .tokens import SMALL_IMAGE_SIDE
from .tokens import image_tokens as tile_tokens
from .vision import SeenImage, SeenObject

_ALL_LEVELS: tuple[str, ...] = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
_NO_MINIMAL: tuple[str, ...] = ("LOW", "MEDIUM", "HIGH")
# Per-image token cost on 3.x by media resolution (cookbook "media resolution per file"; the
# unspecified default is HIGH for images).
LEVEL_TOKENS = {"LOW": 280, "MEDIUM": 560, "HIGH": 1120, "ULTRA_HIGH": 2240}
# Thinking tokens a spatial answer costs at each level / budget (rough, for token accounting).
THOUGHT_TOKENS = {"MINIMAL": 0, "LOW": 160, "MEDIUM": 700, "HIGH": 2200}
SERVED_AS = {"gemini-3.5-flash": "gemini-3.6-flash", "gemini-3-flash-preview": "gemini-3.6-flash"}
POLYGON_EPSILON_PX = 1.0


@dataclass(frozen=True)
class Family:
    generation: str  # "2.0" | "2.5" | "3" | "robotics-1.5" | "robotics-1.6"
    tier: str
    thinking: str  # "none" | "budget" | "level"
    min_budget: int = 0
    levels: tuple[str, ...] = ()
    budget_zero_ok: bool = True  # 3.x: whether a lone thinking_budget of 0 is accepted
    masks: str = "png"  # "png" | "polygon" | "none"

    @property
    def fixed_image_tokens(self) -> bool:
        return self.generation == "3"


_KNOWN_MODEL = re.compile(r"^(gemini|gemma|learnlm)", re.IGNORECASE)


def check_model(model: str, version: str, method: str) -> None:
    """404 NOT_FOUND, as the service answers, for a model name it does not serve."""
    if not _KNOWN_MODEL.match(model):
        raise errors.model_not_found(model, version, method)


def family_of(model: str) -> Family:
    name = model.lower()
    robotics = re.search(r"robotics-er-(\d+)\.(\d+)", name)
    if robotics:
        if (int(robotics.group(1)), int(robotics.group(2))) >= (1, 6):
            return Family("robotics-1.6", "robotics", "budget", masks="polygon")
        return Family("robotics-1.5", "robotics", "budget", masks="png")
    version = re.search(r"gemini-(\d+)(?:\.(\d+))?", name)
    major, minor = (int(version.group(1)), int(version.group(2) or 0)) if version else (2, 5)
    tier = "flash-lite" if "flash-lite" in name else "flash" if "flash" in name else "pro" if "pro" in name else "other"
    if (major, minor) < (2, 5):
        return Family("2.0", tier, "none", masks="none")
    if major < 3:
        return Family("2.5", tier, "budget", min_budget=128 if tier == "pro" else 0, masks="png")
    if tier == "pro" or (tier == "flash" and (major, minor) >= (3, 7)):
        levels = _NO_MINIMAL
    else:
        levels = _ALL_LEVELS
    return Family("3", tier, "level", levels=levels, budget_zero_ok=(major, minor) >= (3, 7), masks="polygon")


def served_as(model: str) -> str:
    """The model that really answers for `model` (modelVersion in the reply)."""
    return SERVED_AS.get(model.lower(), model)


def _thinking_config(body: dict) -> dict:
    config = wire.get(body, "generationConfig") or {}
    thinking = wire.get(config, "thinkingConfig") or {}
    return thinking if isinstance(thinking, dict) else {}


def _level(value) -> str | None:
    if value is None:
        return None
    word = str(value).upper().replace("THINKING_LEVEL_", "")
    return None if word in ("", "UNSPECIFIED") else word


def check_thinking(family: Family, body: dict) -> None:
    """Raise the 400 the service answers for a thinking config this family refuses."""
    thinking = _thinking_config(body)
    budget = wire.get(thinking, "thinkingBudget")
    level = _level(wire.get(thinking, "thinkingLevel"))
    if budget is None and level is None:
        return
    if family.thinking == "none":
        raise errors.invalid_argument("Thinking is not supported for this model.")
    if budget is not None and level is not None:
        raise errors.invalid_argument("You can only set one of thinking budget and thinking level.")
    if family.thinking == "budget":
        if level is not None:
            raise errors.invalid_argument("Thinking level is not supported for this model.")
        if int(budget) == 0 and family.min_budget > 0:
            raise errors.invalid_argument("Budget 0 is invalid. This model only works in thinking mode.")
        if 0 < int(budget) < family.min_budget or int(budget) < -1:
            raise errors.invalid_argument(f"The thinking budget ({int(budget)}) is invalid.")
        return
    if level is not None and level not in family.levels:
        raise errors.invalid_argument(
            f"Thinking level {level} is not supported for this model. Please retry with other thinking level."
        )
    if budget is not None and int(budget) == 0 and not family.budget_zero_ok:
        raise errors.invalid_argument("Budget 0 is invalid. This model only works in thinking mode.")


def thought_tokens(family: Family, body: dict) -> int:
    """Thinking tokens the answer reports (usageMetadata.thoughtsTokenCount)."""
    thinking = _thinking_config(body)
    budget = wire.get(thinking, "thinkingBudget")
    level = _level(wire.get(thinking, "thinkingLevel"))
    if family.thinking == "none":
        return 0
    if family.thinking == "level":
        if level is None and budget is not None and int(budget) == 0:
            return 0
        return THOUGHT_TOKENS.get(level or "MEDIUM", THOUGHT_TOKENS["MEDIUM"])
    if budget is None:  # dynamic thinking by default on 2.5
        return 0 if family.tier == "flash-lite" else 400
    return max(0, min(int(budget), 400)) if int(budget) >= 0 else 400


def part_resolutions(body: dict) -> list[str | None]:
    """The per-part media resolution level of each image part, in order (3.x reads it)."""
    levels: list[str | None] = []
    contents = wire.get(body, "contents") or []
    for content in contents if isinstance(contents, list) else [contents]:
        parts = wire.get(content, "parts") or [] if isinstance(content, dict) else []
        for part in parts:
            if not isinstance(part, dict) or not (wire.get(part, "inlineData") or wire.get(part, "fileData")):
                continue
            resolution = wire.get(part, "mediaResolution")
            level = wire.get(resolution, "level") if isinstance(resolution, dict) else resolution
            levels.append(str(level).replace("MEDIA_RESOLUTION_", "") if level else None)
    return levels


def image_tokens(family: Family, images: list[SeenImage], body: dict, request_resolution: str | None) -> int:
    """Prompt tokens of the images: tiles on 2.x, a fixed cost per resolution level on 3.x."""
    if not family.fixed_image_tokens:
        return sum(tile_tokens(s.width, s.height, request_resolution) for s in images)
    per_part = part_resolutions(body)
    request_level = str(request_resolution).replace("MEDIA_RESOLUTION_", "") if request_resolution else None
    total = 0
    for index, _seen in enumerate(images):
        level = (per_part[index] if index < len(per_part) else None) or request_level or "HIGH"
        total += LEVEL_TOKENS.get(level, LEVEL_TOKENS["HIGH"])
    return total


# What the model looks at: an image is scaled to its token budget before it is seen, TOKEN_PIXELS per
# token (28 x 28 px), so an object narrower than MIN_VISIBLE_PX at that scale is missed. The same
# rule as the backend's tiling/grid.py, written again on purpose (the emulator plays the service).
TOKEN_PIXELS = 28 * 28
MIN_VISIBLE_PX = 10
TILE_SIDE_2X = 768  # 2.x resamples each crop of min(w, h) / 1.5 px to a 768 px tile (tokens.py)


def _level_word(value: str | None) -> str | None:
    return str(value).replace("MEDIA_RESOLUTION_", "").upper() if value else None


def image_levels(family: Family, count: int, body: dict, request_resolution: str | None) -> list[str | None]:
    """The media-resolution level each of `count` request images is seen at (None: the default)."""
    request_level = _level_word(request_resolution)
    if not family.fixed_image_tokens:
        return [request_level] * count
    per_part = part_resolutions(body)
    return [_level_word(per_part[i] if i < len(per_part) else None) or request_level for i in range(count)]


def seen_scale(family: Family, width: int, height: int, level: str | None) -> float:
    """The factor by which this family resizes a width x height image at `level` before looking:
    below 1 for an image above its budget, above 1 for a small one (the model sees its budget's
    pixels whatever it is sent, so a 64 px icon is looked at enlarged)."""
    if family.fixed_image_tokens:
        tokens = LEVEL_TOKENS.get(level or "HIGH", LEVEL_TOKENS["HIGH"])
    elif level in ("LOW", "MEDIUM"):  # 2.x request-wide: a fixed count (tokens.py)
        tokens = {"LOW": 64, "MEDIUM": 256}[level]
    else:  # 2.x default: one 768 px tile up to 384 px, else crops of min(w, h) / 1.5 px resampled to 768 px
        if max(width, height) <= SMALL_IMAGE_SIDE:
            return TILE_SIDE_2X / max(1, width, height)
        return TILE_SIDE_2X / max(1, math.floor(min(width, height) / 1.5))
    return math.sqrt(tokens * TOKEN_PIXELS / max(1, width * height))


def at_budget(family: Family, seen: SeenImage, level: str | None) -> SeenImage:
    """`seen` as the model sees it at `level`: the objects narrower than MIN_VISIBLE_PX at that scale left out."""
    scale = seen_scale(family, seen.width, seen.height, level)
    kept = tuple(o for o in seen.objects
                 if min(o.box[2] - o.box[0], o.box[3] - o.box[1]) * scale >= MIN_VISIBLE_PX)
    return replace(seen, objects=kept, scale=scale)  # text is read at this scale (ocr.py)


def polygon_mask(obj: SeenObject, seen: SeenImage) -> list:
    """The object's outline as 3.x answers it: [[x, y], ...] in 0-1000 of the image (several rings
    when the object is in several parts)."""
    x0, y0 = obj.box[0], obj.box[1]
    contours, _ = cv2.findContours(obj.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for contour in contours:
        simplified = cv2.approxPolyDP(contour, POLYGON_EPSILON_PX, True).reshape(-1, 2).astype(np.float64)
        if len(simplified) < 3:
            continue
        # Contours run through pixel centres; +0.5 puts them in continuous image coordinates.
        ring = [
            [int(round((x + x0 + 0.5) / seen.width * 1000)), int(round((y + y0 + 0.5) / seen.height * 1000))]
            for x, y in simplified
        ]
        rings.append(ring)
    if not rings:
        return []
    return rings[0] if len(rings) == 1 else rings


def mask_encoder(family: Family) -> MaskEncoder | None:
    """The mask value this family writes for an object, or None when it does not segment."""
    if family.masks == "none":
        return None
    return polygon_mask if family.masks == "polygon" else png_mask
