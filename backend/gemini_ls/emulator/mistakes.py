"""Realistic model mistakes at set rates, so that the review loop's learning is measurable.

- false_positive: expected made-up objects per answer (0.3 = one in about a third of the answers,
  2.5 = two or three), on the background (never overlapping a real object), labelled with one of
  the asked labels, at a LOWER confidence (uniform in fp_confidence) than real objects (0.90-0.98);
- jitter: the share of boxes whose edges move by up to jitter_fraction of the box size;
- swap: the share of objects answered with another of the asked labels. A label the request's
  few-shot examples show (a "label" in a model turn of the conversation history) is swapped at
  EXAMPLE_SWAP_FACTOR of that rate: worked examples of a label make its confusions rarer, which is
  what few-shot is for (an emulator behaviour, chosen so that FEW_SHOT_EXAMPLES is measurable).
- overconfident: a confidence that is informative but miscalibrated, as real models' is (so that
  REVIEW_LEARN=calibration is measurable). When > 0, every spatial item's confidence is redrawn:
  right ones (real objects with their own label, jittered or not) uniform in CONFIDENT, wrong ones
  (made up or swapped) uniform in DOUBTFUL, except a share `overconfident` of them that look as
  sure as the right ones (CONFIDENT). A low confidence then means "wrong", a high one "probably
  right", and neither is the probability it reads as: 0.65 is never right, 0.9 less often than
  nine times in ten. Drawn from a generator of its own (seeded like the mistakes: the same scene
  and request give the same confidences), so the mistakes made are those made without it.

Mistakes are drawn from a generator seeded by the request itself, so the same request always gets
the same answer (repeatable runs, comparable evaluate variants). Configure them per server
(POST /_emulator/mistakes {"false_positive": 0.3, ...}, or `gemini-ls emulator --mistakes ...`) or
per request (header `x-emulator-mistakes: false_positive=0.3;jitter=0.2`).
"""

from __future__ import annotations

import base64
import io
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

from PIL import Image

from .faults import FaultError
from .understanding import Task, TaskKind
from .vision import SeenImage

HEADER = "x-emulator-mistakes"
EXAMPLE_SWAP_FACTOR = 0.2
CONFIDENT = (0.80, 0.99)  # overconfident mode: right items, and the overconfident share of wrong ones
DOUBTFUL = (0.45, 0.85)  # overconfident mode: the other wrong items


class MistakesError(FaultError):  # the emulator answers it as 400 INVALID_ARGUMENT, like a bad fault
    pass


@dataclass(frozen=True)
class Mistakes:
    false_positive: float = 0.0
    fp_confidence_low: float = 0.3
    fp_confidence_high: float = 0.6
    jitter: float = 0.0
    jitter_fraction: float = 0.1
    swap: float = 0.0
    overconfident: float = 0.0
    seed: int = 0

    @property
    def active(self) -> bool:
        return bool(self.false_positive or self.jitter or self.swap or self.overconfident)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Mistakes:
        known = {f.name: f.type for f in fields(cls)}
        kw: dict[str, float | int] = {}
        for k, v in values.items():
            if k not in known:
                raise MistakesError(f"unknown mistake {k!r}; known: {', '.join(known)}")
            try:
                kw[k] = int(str(v)) if k == "seed" else float(str(v))
            except ValueError:
                raise MistakesError(f"mistake {k}={v!r} is not a number") from None
            if kw[k] < 0:
                raise MistakesError(f"mistake {k}={v!r} must be >= 0")
        return cls(**kw)  # type: ignore[arg-type]

    @classmethod
    def parse(cls, text: str) -> Mistakes:
        """`false_positive=0.3;jitter=0.2` (the header and CLI form)."""
        pairs = [p.partition("=") for p in text.replace(",", ";").split(";") if p.strip()]
        return cls.from_mapping({k.strip(): v.strip() for k, _, v in pairs})


def _fp_mask() -> str:
    """A soft blob: what a made-up segmentation looks like."""
    im = Image.new("L", (256, 256), 0)
    from PIL import ImageDraw

    ImageDraw.Draw(im).ellipse((24, 24, 232, 232), fill=230)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _object_boxes(seen: SeenImage) -> list[tuple[float, float, float, float]]:
    """Real objects as [y0, x0, y1, x1] in Gemini's 0-1000 frame, with a margin."""
    out = []
    for obj in seen.objects:
        x0, y0, x1, y1 = obj.box
        out.append((y0 / seen.height * 1000 - 20, x0 / seen.width * 1000 - 20, y1 / seen.height * 1000 + 20, x1 / seen.width * 1000 + 20))
    return out


def _move(v: float, size: float, fraction: float, rng: random.Random) -> int:
    return int(round(min(1000.0, max(0.0, v + rng.uniform(-fraction, fraction) * size))))


def shown_labels(answers: Sequence[str]) -> frozenset[str]:
    """Labels named by few-shot example answers (JSON lists of {"label": ...}); prose is ignored."""
    out: set[str] = set()
    for text in answers:
        try:
            items = json.loads(text)
        except ValueError:
            continue
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and isinstance(item.get("label"), str):
                out.add(item["label"])
    return frozenset(out)


def apply(items: list, task: Task, images: Sequence[SeenImage], mistakes: Mistakes | None, key: str,
          shown: frozenset[str] = frozenset()) -> list:
    """The answer items with mistakes made (a new list; `items` is not changed). `shown`: labels
    the request's few-shot examples show, swapped less often (module docstring)."""
    if mistakes is None or not mistakes.active or not images:
        return items
    spatial = [i for i in items if isinstance(i, dict) and ("box_2d" in i or "point" in i)]
    if len(spatial) != len(items) and items:
        return items  # classification answers: no spatial mistakes to make
    rng = random.Random(f"{mistakes.seed}:{key}")
    labels = [t.label for t in task.targets if t.label]
    out: list = []
    wrong: list[bool] = []  # per item of `out`: made up or swapped (the overconfident mode's truth)
    for item in items:
        item = dict(item)
        if "box_2d" in item and rng.random() < mistakes.jitter:
            y0, x0, y1, x1 = item["box_2d"]
            h, w, f = y1 - y0, x1 - x0, mistakes.jitter_fraction
            item["box_2d"] = [_move(v, size, f, rng) for v, size in ((y0, h), (x0, w), (y1, h), (x1, w))]
        swap = mistakes.swap * (EXAMPLE_SWAP_FACTOR if item.get("label") in shown else 1.0)
        swapped = len(labels) > 1 and rng.random() < swap and item.get("label") in labels
        if swapped:
            item["label"] = rng.choice([x for x in labels if x != item["label"]])
        out.append(item)
        wrong.append(swapped)
    n_fp = int(mistakes.false_positive) + (1 if rng.random() < mistakes.false_positive % 1 else 0)
    if not labels or task.free_form:
        return _confidences(out, wrong, mistakes, key)
    for _ in range(n_fp):
        idx = rng.randrange(len(images))
        taken = _object_boxes(images[idx])
        for _attempt in range(30):
            h, w = rng.uniform(60, 160), rng.uniform(60, 160)
            y0, x0 = rng.uniform(0, 1000 - h), rng.uniform(0, 1000 - w)
            box = (y0, x0, y0 + h, x0 + w)
            if not any(_overlaps(box, t) for t in taken):
                break
        else:
            continue  # no free background: no false positive rather than one on a real object
        fp: dict = {}
        if task.kind is TaskKind.POINT:
            fp["point"] = [int(y0 + h / 2), int(x0 + w / 2)]
        else:
            fp["box_2d"] = [int(v) for v in box]
            if task.kind is TaskKind.SEGMENT:
                fp["mask"] = _fp_mask()
        fp["label"] = rng.choice(labels)
        fp["confidence"] = round(rng.uniform(mistakes.fp_confidence_low, mistakes.fp_confidence_high), 2)
        if len(images) > 1:
            fp["image_index"] = idx
        out.append(fp)
        wrong.append(True)
    return _confidences(out, wrong, mistakes, key)


def _confidences(items: list, wrong: Sequence[bool], mistakes: Mistakes, key: str) -> list:
    """The overconfident mode's confidences (module docstring); the items unchanged when it is off."""
    if not mistakes.overconfident:
        return items
    rng = random.Random(f"{mistakes.seed}:{key}:confidence")
    for item, bad in zip(items, wrong):
        if isinstance(item, dict) and "confidence" in item:
            lo, hi = DOUBTFUL if bad and rng.random() >= mistakes.overconfident else CONFIDENT
            item["confidence"] = round(rng.uniform(lo, hi), 2)
    return items


def for_request(header: str | None, server_default: Mistakes | None) -> Mistakes | None:
    """The request's own mistakes (header) or else the server's."""
    return Mistakes.parse(header) if header and header.strip() else server_default


def control(emu: object, method: str, body: Mapping[str, object]) -> dict | None:
    """/_emulator/mistakes: GET shows, POST sets (the body's fields), DELETE clears."""
    if method == "POST":
        emu.mistakes = Mistakes.from_mapping(body)  # type: ignore[attr-defined]
    elif method == "DELETE":
        emu.mistakes = None  # type: ignore[attr-defined]
    current = getattr(emu, "mistakes", None)
    return current.as_dict() if current is not None else None
