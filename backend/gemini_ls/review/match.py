"""Matching our predicted regions to what the annotator submitted, per control.

Pure functions over Label Studio result lists (no I/O). Each predicted region gets one outcome:

- accepted:   matched, same label, geometry unchanged (similarity >= UNCHANGED);
- adjusted:   matched, same label, geometry moved;
- relabelled: matched geometry, another label;
- deleted:    no annotation region matches it (a false positive);

and each annotation region nothing matches is missed (a false negative).

Matching happens within one control (`from_name`) and one object (`to_name`). Label Studio keeps
a predicted region's `id` when the annotator accepts or edits it, so equal ids pair first whatever
their geometry (the annotator edited OUR region, however far it moved). The rest are paired by an
optimal assignment (scipy's Hungarian `linear_sum_assignment`) maximising similarity, pairs below
the control type's match threshold excluded: a greedy pass by IoU can steal a region's only
partner and turn two matches into one deletion plus one miss.

Similarity per result type: rectangles by box IoU (rotated ones as polygons), brush masks by mask
IoU (Label Studio RLE decoded), polygons by polygon IoU (rasterised with OpenCV), keypoints by
1 - distance / (KEYPOINT_RADIUS x image diagonal), choices exactly (a choice pairs with a choice of
the same control; same value = accepted, other value = relabelled), text areas by the similarity
of their normalised text.
"""

from __future__ import annotations

import difflib
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..regions.result import CONFIDENCE_KEY
from ..regions.rle import decode_brush

UNCHANGED = 0.995  # similarity at or above which a matched region counts as untouched (float round-off)
KEYPOINT_RADIUS = 0.05  # a keypoint within 5 % of the image diagonal is the same point
RASTER_SIDE = 512  # polygons are compared on a grid whose longest side is this many cells
MATCH_THRESHOLDS: dict[str, float] = {
    "rectanglelabels": 0.5,
    "brushlabels": 0.5,
    "polygonlabels": 0.5,
    "keypointlabels": 1e-9,  # any positive similarity: inside the radius
    "choices": 0.0,
    "textarea": 0.5,
}
LABEL_KEYS = ("rectanglelabels", "brushlabels", "polygonlabels", "keypointlabels", "choices", "labels")
_LABEL_BONUS = 1e-3  # among equally similar pairs, prefer the one that agrees on the label


class Outcome(str, enum.Enum):
    ACCEPTED = "accepted"
    ADJUSTED = "adjusted"
    RELABELLED = "relabelled"
    DELETED = "deleted"
    MISSED = "missed"


OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)


@dataclass(frozen=True)
class Region:
    """One comparable region of a result list."""

    id: str | None
    control: str
    to_name: str
    kind: str
    label: str | None
    value: Mapping[str, Any]
    width: int | None  # original_width / height: pixels for keypoint distances and mask decoding
    height: int | None
    score: float | None  # Gemini's confidence: CONFIDENCE_KEY when the score was calibrated, else `score`
    shown: float | None = None  # the region's `score` as Label Studio shows it
    size: float | None = None  # box area / image area (rectangles and polygons)


@dataclass(frozen=True)
class RegionOutcome:
    control: str
    kind: str
    label: str  # the predicted label; for missed regions the annotator's
    outcome: Outcome
    similarity: float | None = None  # matched pairs only
    score: float | None = None  # the predicted region's confidence
    new_label: str | None = None  # relabelled: what the annotator chose
    predicted_id: str | None = None
    annotation_id: str | None = None
    shown: float | None = None  # the predicted region's `score` (the calibrated one, when calibrated)
    size: float | None = None  # the predicted region's box area / image area


def _label(kind: str, value: Mapping[str, Any]) -> str | None:
    """First label of a region (a multi-label region counts under its first label)."""
    labels = value.get(kind)
    if not isinstance(labels, list):
        for key in LABEL_KEYS:
            if isinstance(value.get(key), list):
                labels = value[key]
                break
    if isinstance(labels, list) and labels and isinstance(labels[0], str):
        return labels[0]
    return None


# a bare shape tool's result type -> the labelled type it is compared as, once joined with its labels
_LABELLED = {"rectangle": "rectanglelabels", "polygon": "polygonlabels", "brush": "brushlabels", "keypoint": "keypointlabels"}


def _joined(result: Sequence[Any]) -> list[Any]:
    """A shape result and the `labels` result sharing its id (Label Studio's OCR form,
    regions/perregion.py) as the one labelled region they are; every other result as it is."""
    labels = {r.get("id"): r for r in result if isinstance(r, Mapping) and r.get("type") == "labels" and r.get("id")}
    shapes = {r.get("id") for r in result if isinstance(r, Mapping) and r.get("type") in _LABELLED}
    out = []
    for r in result:
        if not isinstance(r, Mapping):
            continue
        kind, rid = r.get("type"), r.get("id")
        if kind == "labels" and rid in shapes:
            continue
        partner = labels.get(rid) if kind in _LABELLED else None
        if partner is not None and isinstance(r.get("value"), Mapping) and isinstance(partner.get("value"), Mapping):
            labelled = _LABELLED[str(kind)]
            r = {**r, "type": labelled, "value": {**r["value"], labelled: partner["value"].get("labels")}}
        out.append(r)
    return out


def regions_of(result: Sequence[Mapping[str, Any]] | None) -> list[Region]:
    """The comparable regions of a Label Studio result list; relations and unknown types are skipped.

    A Choices result with several values becomes one region per value; a shape and its `labels`
    result (one id) are one labelled region.
    """
    out: list[Region] = []
    for r in _joined(result or ()):
        if not isinstance(r, Mapping) or not isinstance(r.get("value"), Mapping):
            continue
        kind = str(r.get("type", "")).lower()
        if kind not in MATCH_THRESHOLDS:
            continue
        value = r["value"]
        shown = _number(r.get("score"))
        raw = _number(r.get(CONFIDENCE_KEY))
        if kind == "choices":
            labels: list[str | None] = [c for c in value.get("choices") or () if isinstance(c, str)]
        elif kind == "textarea":
            labels = [str(r.get("from_name", ""))]
        else:
            labels = [_label(kind, value)]
        for label in labels:
            out.append(Region(
                id=r.get("id") if isinstance(r.get("id"), str) else None,
                control=str(r.get("from_name", "")),
                to_name=str(r.get("to_name", "")),
                kind=kind,
                label=label,
                value=value,
                width=_int_or_none(r.get("original_width")),
                height=_int_or_none(r.get("original_height")),
                score=raw if raw is not None else shown,
                shown=shown,
                size=_size(kind, value),
            ))
    return out


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _size(kind: str, value: Mapping[str, Any]) -> float | None:
    """A region's box area as a share of the image (percent geometry), for the calibration's ledger."""
    try:
        if kind == "rectanglelabels":
            return round(float(value.get("width", 0)) * float(value.get("height", 0)) / 1e4, 6)
        if kind == "polygonlabels" and value.get("points"):
            pts = np.asarray(value["points"], float).reshape(-1, 2)
            return round(float(np.ptp(pts[:, 0]) * np.ptp(pts[:, 1])) / 1e4, 6)
    except (TypeError, ValueError):
        return None
    return None


def _int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and v > 0 else None


# ----- similarity per kind -----------------------------------------------------------------------


def _corners(v: Mapping[str, Any]) -> np.ndarray:
    """A (possibly rotated) rectangle's corners in percent; Label Studio rotates about (x, y)."""
    x, y, w, h = (float(v.get(k, 0.0)) for k in ("x", "y", "width", "height"))
    a = math.radians(float(v.get("rotation", 0.0) or 0.0))
    c, s = math.cos(a), math.sin(a)
    pts = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    return np.array([(x + px * c - py * s, y + px * s + py * c) for px, py in pts])


def box_iou(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    ax0, ay0 = float(a.get("x", 0)), float(a.get("y", 0))
    bx0, by0 = float(b.get("x", 0)), float(b.get("y", 0))
    ax1, ay1 = ax0 + float(a.get("width", 0)), ay0 + float(a.get("height", 0))
    bx1, by1 = bx0 + float(b.get("width", 0)), by0 + float(b.get("height", 0))
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def _grid(width: int | None, height: int | None) -> tuple[int, int]:
    w, h = width or RASTER_SIDE, height or RASTER_SIDE
    scale = RASTER_SIDE / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _raster(points_pct: np.ndarray, gw: int, gh: int) -> np.ndarray:
    canvas = np.zeros((gh, gw), np.uint8)
    if len(points_pct) >= 3:
        pts = np.round(points_pct / 100.0 * np.array([gw, gh])).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 1)
    return canvas.astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def polygon_iou(a: Any, b: Any, width: int | None, height: int | None) -> float:
    gw, gh = _grid(width, height)
    pa, pb = np.asarray(a, float).reshape(-1, 2), np.asarray(b, float).reshape(-1, 2)
    return mask_iou(_raster(pa, gw, gh), _raster(pb, gw, gh))


def normalise_text(text: str) -> str:
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text.casefold()).split())


def _text(value: Mapping[str, Any]) -> str:
    parts = value.get("text")
    if isinstance(parts, str):
        return parts
    return " ".join(p for p in parts or () if isinstance(p, str))


class _Similarity:
    """Similarity of two regions of the same kind; decoded brush masks are cached per region."""

    def __init__(self) -> None:
        self._masks: dict[int, np.ndarray | None] = {}

    def _mask(self, r: Region) -> np.ndarray | None:
        key = id(r)
        if key not in self._masks:
            self._masks[key] = decode_brush(r.value, r.width, r.height) if r.width and r.height else None
        return self._masks[key]

    def __call__(self, p: Region, a: Region) -> float:
        kind = p.kind
        if kind == "rectanglelabels":
            if float(p.value.get("rotation", 0) or 0) == 0 and float(a.value.get("rotation", 0) or 0) == 0:
                return box_iou(p.value, a.value)
            return polygon_iou(_corners(p.value), _corners(a.value), p.width or a.width, p.height or a.height)
        if kind == "polygonlabels":
            return polygon_iou(p.value.get("points") or [], a.value.get("points") or [], p.width or a.width, p.height or a.height)
        if kind == "brushlabels":
            mp, ma = self._mask(p), self._mask(a)
            if mp is None or ma is None or mp.shape != ma.shape:
                return 0.0
            return mask_iou(mp, ma)
        if kind == "keypointlabels":
            w, h = float(p.width or a.width or 100), float(p.height or a.height or 100)
            dx = (float(p.value.get("x", 0)) - float(a.value.get("x", 0))) / 100.0 * w
            dy = (float(p.value.get("y", 0)) - float(a.value.get("y", 0))) / 100.0 * h
            return max(0.0, 1.0 - math.hypot(dx, dy) / (KEYPOINT_RADIUS * math.hypot(w, h)))
        if kind == "choices":
            return 1.0
        if kind == "textarea":
            return difflib.SequenceMatcher(None, normalise_text(_text(p.value)), normalise_text(_text(a.value))).ratio()
        return 0.0


# ----- assignment --------------------------------------------------------------------------------


def _assign(pred: list[Region], ann: list[Region], sim: _Similarity) -> list[tuple[int, int, float]]:
    """(pred index, ann index, similarity): ids first, then the optimal assignment of the rest."""
    pairs: list[tuple[int, int, float]] = []
    ann_by_id = {r.id: j for j, r in enumerate(ann) if r.id is not None}
    used_p: set[int] = set()
    used_a: set[int] = set()
    for i, p in enumerate(pred):
        j = ann_by_id.get(p.id) if p.id is not None else None
        # a Choices region shares its result id with the other values of that result: ids pair
        # only one region per side, and only when the values (labels) agree
        if j is None or j in used_a or (p.kind == "choices" and ann[j].label != p.label):
            continue
        pairs.append((i, j, sim(p, ann[j])))
        used_p.add(i)
        used_a.add(j)
    rest_p = [i for i in range(len(pred)) if i not in used_p]
    rest_a = [j for j in range(len(ann)) if j not in used_a]
    if not rest_p or not rest_a:
        return pairs
    threshold = MATCH_THRESHOLDS[pred[rest_p[0]].kind]
    score = np.full((len(rest_p), len(rest_a)), -1.0)
    for x, i in enumerate(rest_p):
        for y, j in enumerate(rest_a):
            s = sim(pred[i], ann[j])
            if s >= threshold:
                score[x, y] = s + (_LABEL_BONUS if pred[i].label == ann[j].label else 0.0)
    rows, cols = linear_sum_assignment(score, maximize=True)
    for x, y in zip(rows, cols):
        if score[x, y] >= 0.0:
            s = score[x, y]
            i, j = rest_p[x], rest_a[y]
            pairs.append((i, j, float(s - _LABEL_BONUS if pred[i].label == ann[j].label else s)))
    return pairs


def match_regions(
    predicted: Sequence[Mapping[str, Any]] | None, annotated: Sequence[Mapping[str, Any]] | None
) -> tuple[RegionOutcome, ...]:
    """Every predicted region's outcome, then every missed annotation region (see module doc)."""
    pred_regions, ann_regions = regions_of(predicted), regions_of(annotated)
    groups: dict[tuple[str, str, str], tuple[list[Region], list[Region]]] = {}
    for r in pred_regions:
        groups.setdefault((r.control, r.to_name, r.kind), ([], []))[0].append(r)
    for r in ann_regions:
        groups.setdefault((r.control, r.to_name, r.kind), ([], []))[1].append(r)
    sim = _Similarity()
    outcomes: list[RegionOutcome] = []
    missed: list[RegionOutcome] = []
    for (control, _to, kind), (pred, ann) in groups.items():
        pairs = _assign(pred, ann, sim)
        by_pred = {i: (j, s) for i, j, s in pairs}
        matched_ann = {j for _, j, _ in pairs}
        for i, p in enumerate(pred):
            label = p.label or ""
            if i not in by_pred:
                outcomes.append(RegionOutcome(control, kind, label, Outcome.DELETED, score=p.score, predicted_id=p.id,
                                              shown=p.shown, size=p.size))
                continue
            j, s = by_pred[i]
            a = ann[j]
            if (a.label or "") != label:
                outcome, new_label = Outcome.RELABELLED, a.label
            elif s >= UNCHANGED:
                outcome, new_label = Outcome.ACCEPTED, None
            else:
                outcome, new_label = Outcome.ADJUSTED, None
            outcomes.append(RegionOutcome(control, kind, label, outcome, round(s, 6), p.score, new_label, p.id, a.id,
                                          shown=p.shown, size=p.size))
        for j, a in enumerate(ann):
            if j not in matched_ann:
                missed.append(RegionOutcome(control, kind, a.label or "", Outcome.MISSED, annotation_id=a.id))
    return tuple(outcomes + missed)
