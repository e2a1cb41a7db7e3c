"""Helpers shared by integration, fault and e2e tests: label configs for synthetic scenes and
ground-truth matching of Label Studio results."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gemini_ls.emulator.scenes import COLOURS, Scene, SceneObject, box_iou
from gemini_ls.emulator.tilescenes import LARGE_COLOUR, SMALL_COLOUR


def colour_labels(tag: str = "Label") -> str:
    """One label per palette colour, described to Gemini by its hint: "Red" -> "red objects"."""
    return "".join(f'<{tag} value="{c.capitalize()}" hint="{c} objects"/>' for c in COLOURS)


def config(*controls: str, image: str = '<Image name="image" value="$image"/>') -> str:
    return f"<View>{image}{''.join(controls)}</View>"


def rect_control(name: str = "rect", to: str = "image", extra: str = "") -> str:
    return f'<RectangleLabels name="{name}" toName="{to}" {extra}>{colour_labels()}</RectangleLabels>'


def brush_control(name: str = "brush", to: str = "image", extra: str = "") -> str:
    return f'<BrushLabels name="{name}" toName="{to}" {extra}>{colour_labels()}</BrushLabels>'


def polygon_control(name: str = "poly", to: str = "image", extra: str = "") -> str:
    return f'<PolygonLabels name="{name}" toName="{to}" {extra}>{colour_labels()}</PolygonLabels>'


def keypoint_control(name: str = "kp", to: str = "image", extra: str = 'model_max_objects="40"') -> str:
    return f'<KeyPointLabels name="{name}" toName="{to}" {extra}>{colour_labels()}</KeyPointLabels>'


def interactive_config(*outputs: str) -> str:
    """Smart KeyPointLabels + RectangleLabels (the annotator's prompts), a TextArea for phrases, and
    one output control per tag in `outputs` (default BrushLabels + PolygonLabels), colour labels."""
    names = {"BrushLabels": "brush", "PolygonLabels": "poly", "RectangleLabels": "rect"}
    tools = "".join(f'<{tag} name="{names[tag]}" toName="image">{colour_labels()}</{tag}>'
                    for tag in (outputs or ("BrushLabels", "PolygonLabels")))
    return (
        '<View><Image name="image" value="$image"/>'
        f'<KeyPointLabels name="kp" toName="image" smart="true">{colour_labels()}</KeyPointLabels>'
        f'<RectangleLabels name="box" toName="image" smart="true">{colour_labels()}</RectangleLabels>'
        f'{tools}<TextArea name="prompt" toName="image" editable="true"/></View>'
    )


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def rect_pixels(region: Mapping) -> tuple[float, float, float, float]:
    """A rectanglelabels region back to pixels of the image Label Studio shows."""
    v, w, h = region["value"], region["original_width"], region["original_height"]
    x0 = v["x"] / 100 * w
    y0 = v["y"] / 100 * h
    return (x0, y0, x0 + v["width"] / 100 * w, y0 + v["height"] / 100 * h)


def scene_rect_regions(scene: Scene, name: str = "rect", to: str = "image") -> list[dict]:
    """A scene's objects as the rectanglelabels regions a perfect annotator draws (ground truth)."""
    out = []
    for i, o in enumerate(scene.objects):
        x0, y0, x1, y1 = o.box
        w, h = scene.width, scene.height
        out.append({"id": f"t{i}", "from_name": name, "to_name": to, "type": "rectanglelabels",
                    "original_width": w, "original_height": h,
                    "value": {"x": 100 * x0 / w, "y": 100 * y0 / h, "width": 100 * (x1 - x0) / w, "height": 100 * (y1 - y0) / h,
                              "rotation": 0, "rectanglelabels": [o.colour.capitalize()]}})
    return out


def label_of(region: Mapping) -> str:
    value = region["value"]
    for key in ("rectanglelabels", "brushlabels", "polygonlabels", "keypointlabels"):
        if key in value:
            return value[key][0]
    raise KeyError("no labels in region")


def best_matches(regions: Sequence[Mapping], objects: Iterable[SceneObject], score) -> list[float]:
    """For every ground-truth object the best score among regions of its colour label (greedy, one-to-one)."""
    pool = list(regions)
    out = []
    for obj in sorted(objects, key=lambda o: -o.area):
        candidates = [r for r in pool if label_of(r) == obj.colour.capitalize()]
        if not candidates:
            out.append(0.0)
            continue
        best = max(candidates, key=lambda r: score(r, obj))
        out.append(score(best, obj))
        pool.remove(best)
    return out


def rect_ious(regions: Sequence[Mapping], scene: Scene) -> list[float]:
    rects = [r for r in regions if r["type"] == "rectanglelabels"]
    return best_matches(rects, scene.objects, lambda r, o: box_iou(rect_pixels(r), o.box))


def brush_mask(region: Mapping) -> np.ndarray:
    from label_studio_sdk.converter.brush import decode_rle

    w, h = region["original_width"], region["original_height"]
    return np.asarray(decode_rle(region["value"]["rle"]), dtype=np.uint8).reshape(h, w, 4)[:, :, 3] > 0


def polygon_mask(region: Mapping) -> np.ndarray:
    import cv2

    w, h = region["original_width"], region["original_height"]
    pts = np.array([[x / 100 * w, y / 100 * h] for x, y in region["value"]["points"]], dtype=np.float64)
    canvas = np.zeros((h, w), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts - 0.5).astype(np.int32)], 1)
    return canvas > 0


def _mask_iou_in_box(mask: np.ndarray, obj: SceneObject, width: int, height: int) -> float:
    truth = obj.full_mask(width, height)
    inter = np.logical_and(mask, truth).sum()
    union = np.logical_or(mask, truth).sum()
    return float(inter / union) if union else 0.0


def brush_ious(regions: Sequence[Mapping], scene: Scene) -> list[float]:
    brushes = [r for r in regions if r["type"] == "brushlabels"]
    masks = {id(r): brush_mask(r) for r in brushes}
    return best_matches(brushes, scene.objects, lambda r, o: _mask_iou_in_box(masks[id(r)], o, scene.width, scene.height))


def polygon_ious(regions: Sequence[Mapping], scene: Scene) -> list[float]:
    polys = [r for r in regions if r["type"] == "polygonlabels"]
    # several polygons may belong to one object; union them per label before matching
    masks = {id(r): polygon_mask(r) for r in polys}
    return best_matches(polys, scene.objects, lambda r, o: _mask_iou_in_box(masks[id(r)], o, scene.width, scene.height))


@dataclass(frozen=True)
class TilingScore:
    small_found: int
    small_total: int
    large_exact: int  # large objects with exactly one region of IoU >= 0.9
    large_total: int
    large_worst_iou: float
    invented: int  # regions overlapping no object at IoU >= 0.5


def tiling_score(regions: Sequence[Mapping], scene: Scene) -> TilingScore:
    """Small objects (SMALL_COLOUR) found and large ones (LARGE_COLOUR) kept whole, emulator/tilescenes.py scenes.
    Greedy one-to-one matching per label at IoU >= 0.5; large objects: every region of their label
    overlapping them counts (two regions for one object is a merge failure)."""
    rects = [(r["value"]["rectanglelabels"][0].lower(), rect_pixels(r)) for r in regions if r["type"] == "rectanglelabels"]
    used: set[int] = set()
    small = [o for o in scene.objects if o.colour == SMALL_COLOUR]
    found = 0
    for obj in small:
        best, best_iou = None, 0.5
        for i, (label, box) in enumerate(rects):
            if i not in used and label == SMALL_COLOUR and box_iou(box, obj.box) >= best_iou:
                best, best_iou = i, box_iou(box, obj.box)
        if best is not None:
            used.add(best)
            found += 1
    large = [o for o in scene.objects if o.colour == LARGE_COLOUR]
    exact, worst = 0, 1.0
    for obj in large:
        hits = [i for i, (label, box) in enumerate(rects) if label == LARGE_COLOUR and box_iou(box, obj.box) > 0.05]
        ious = [box_iou(rects[i][1], obj.box) for i in hits]
        used.update(hits)
        worst = min(worst, max(ious, default=0.0))
        exact += int(len(hits) == 1 and ious[0] >= 0.9)
    return TilingScore(found, len(small), exact, len(large), worst, len(rects) - len(used))
