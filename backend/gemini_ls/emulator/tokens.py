"""Token accounting as the reference (section 4) describes it for Gemini 2.x."""

from __future__ import annotations

import math

SMALL_IMAGE_SIDE = 384
TOKENS_PER_TILE = 258
# Request-wide generationConfig.mediaResolution fixes the per-image cost (types.MediaResolution).
FIXED_MEDIA_TOKENS = {"MEDIA_RESOLUTION_LOW": 64, "MEDIA_RESOLUTION_MEDIUM": 256}


def image_tokens(width: int, height: int, media_resolution: str | None = None) -> int:
    if media_resolution in FIXED_MEDIA_TOKENS:
        return FIXED_MEDIA_TOKENS[media_resolution]
    if width <= SMALL_IMAGE_SIDE and height <= SMALL_IMAGE_SIDE:
        return TOKENS_PER_TILE
    crop = max(1, math.floor(min(width, height) / 1.5))
    return TOKENS_PER_TILE * math.ceil(width / crop) * math.ceil(height / crop)


def text_tokens(text: str) -> int:
    """About four characters per token, the docs' rule of thumb."""
    return math.ceil(len(text) / 4) if text else 0
