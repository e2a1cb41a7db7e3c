"""Scoring OCR predictions against a text scene's ground truth (integration, e2e, benchmark): each
stored region (shape + labels + transcription sharing an id) matched one-to-one to the unit of text
(line, word or block) its box overlaps most."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gemini_ls.emulator.scenes import box_iou
from gemini_ls.emulator.text_scenes import TextScene

from .region_parts import pixel_box, regions_by_id

INK_LABEL = {"printed": "Text", "handwriting": "Handwriting"}  # the OCR template's two labels
Truth = tuple[str, str, tuple[int, int, int, int]]  # (text, ink, box)


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def units(scene: TextScene, unit: str = "line") -> list[Truth]:
    if unit == "word":
        return list(scene.words)
    if unit == "block":
        return [(b.text, b.ink, b.box) for b in scene.blocks]
    return [(ln.text, ln.ink, ln.box) for ln in scene.lines]


@dataclass(frozen=True)
class OcrScore:
    total: int  # units of text in the scene
    regions: int  # regions predicted
    found: int  # units matched by a region at IoU >= min_iou, one-to-one
    right_label: int  # of those, labelled by their ink
    similarities: tuple[float, ...]  # transcription vs the unit's text, per found unit
    worst_iou: float  # of the found units

    @property
    def recall(self) -> float:
        return self.found / self.total if self.total else 1.0

    @property
    def mean_similarity(self) -> float:
        return sum(self.similarities) / len(self.similarities) if self.similarities else 0.0

    @property
    def invented(self) -> int:
        return self.regions - self.found


def score(result: Sequence[Mapping], truth: Sequence[Truth], *, shape: str = "bbox", label: str = "label",
          text: str = "transcription", min_iou: float = 0.5) -> OcrScore:
    regions = regions_by_id(result)
    pairs = []
    for rid, parts in regions.items():
        box = pixel_box(parts[shape])
        for index, (_, _, truth_box) in enumerate(truth):
            iou = box_iou(box, truth_box)
            if iou >= min_iou:
                pairs.append((iou, rid, index))
    taken_regions: set[str] = set()
    taken_truth: set[int] = set()
    right, sims, ious = 0, [], []  # labelled by their ink, transcription similarity, IoU: per found unit
    for iou, rid, index in sorted(pairs, reverse=True):
        if rid in taken_regions or index in taken_truth:
            continue
        taken_regions.add(rid)
        taken_truth.add(index)
        parts = regions[rid]
        truth_text, ink, _ = truth[index]
        right += int(parts[label]["value"]["labels"] == [INK_LABEL[ink]])
        said = parts[text]["value"]["text"][0] if text in parts else ""
        sims.append(similarity(said, truth_text))
        ious.append(iou)
    return OcrScore(len(truth), len(regions), len(taken_truth), right, tuple(sims), min(ious, default=0.0))
