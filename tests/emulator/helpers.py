"""Shared helpers for emulator tests: decode Gemini answers the way a client must."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
from PIL import Image

from gemini_ls.emulator.scenes import Scene, SceneObject, box_iou, norm_box_to_pixels

MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "heic": "image/heic"}


def parse_json_text(text: str):
    """Strip ```json fences and any prose around them."""
    m = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL | re.IGNORECASE)
    return json.loads(m.group(1) if m else text)


def mask_from_item(item: dict, width: int, height: int) -> np.ndarray:
    """Decode the 256x256 PNG probability map, resize it to the pixel box, threshold at 127."""
    x0, y0, x1, y1 = norm_box_to_pixels(item["box_2d"], width, height)
    data = item["mask"].split(",", 1)[1]
    prob = Image.open(io.BytesIO(base64.b64decode(data))).convert("L")
    assert prob.size == (256, 256)
    box_mask = np.asarray(prob.resize((x1 - x0, y1 - y0), Image.BILINEAR)) > 127
    full = np.zeros((height, width), dtype=bool)
    full[y0:y1, x0:x1] = box_mask
    return full


def best_match(obj: SceneObject, items: list[dict], width: int, height: int) -> tuple[float, dict | None]:
    best, best_item = 0.0, None
    for item in items:
        iou = box_iou(obj.box, norm_box_to_pixels(item["box_2d"], width, height))
        if iou > best:
            best, best_item = iou, item
    return best, best_item


def scene_names(scene: Scene) -> list[str]:
    return sorted(o.name for o in scene.objects)
