"""`gemini-ls evaluate`: candidate settings run on a project's annotated tasks as ground truth.

Each `--variant KEY=VALUE[,KEY=VALUE]` is a set of overrides of the current settings; every
variant predicts the same annotated tasks with the full pipeline (its own Gemini client and
metrics), nothing is written to Label Studio, and the per-label precision / recall / IoU (the
same matcher and tally as the review report, the latest annotation of a task being the truth),
tokens and estimated cost per task and latency are printed side by side.
"""

from __future__ import annotations

import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..gemini.pricing import Tokens, price_for, usd_of
from ..labelconfig import parse_label_config
from ..settings import Settings
from ..tiling.grid import parse_tiling
from .fewshot import Example, examples_from_tasks
from .learning import LearnedState
from .match import match_regions
from .stats import Tally, tally

KEYS = {
    "name": "a name for the column",
    "model": "GEMINI_MODEL",
    "media_resolution": "GEMINI_MEDIA_RESOLUTION (LOW, MEDIUM, HIGH, ULTRA_HIGH)",
    "tiling": "TILING (off, auto, RxC)",
    "max_objects": "MODEL_MAX_OBJECTS",
    "score_threshold": "MODEL_SCORE_THRESHOLD",
    "temperature": "GEMINI_TEMPERATURE",
    "image_max_side": "IMAGE_MAX_SIDE",
    "few_shot": "FEW_SHOT_EXAMPLES (examples from the project's reviewed tasks, left out of the evaluated ones)",
    "few_shot_cache": "FEW_SHOT_CACHE (on / off: the examples in a Gemini context cache)",
    "hint.<Label>": "the hint of that label (or choice) in the label config",
}


class VariantError(ValueError):
    pass


@dataclass(frozen=True)
class Variant:
    name: str
    settings: Settings
    hints: Mapping[str, str]


def parse_variant(text: str, base: Settings, index: int) -> Variant:
    """`model=gemini-2.5-pro,max_objects=10,hint.Car=cars and vans`."""
    values: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise VariantError(f"variant {text!r}: {part!r} is not KEY=VALUE (keys: {', '.join(KEYS)})")
        values[key.strip()] = value.strip()
    hints = {k[5:]: v for k, v in values.items() if k.startswith("hint.")}
    s = base
    d = base.defaults
    try:
        for key, value in values.items():
            if key in ("name",) or key.startswith("hint."):
                continue
            if key == "model":
                s = s.with_(model=value)
            elif key == "media_resolution":
                if value.upper() not in ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH"):
                    raise VariantError(f"media_resolution={value!r}: LOW, MEDIUM, HIGH or ULTRA_HIGH")
                # the controls' default (model_media_resolution) too: a plan's level wins over the setting
                s = s.with_(media_resolution=value.upper())
                d = replace(d, media_resolution=value.upper())
            elif key == "tiling":
                mode, shape = parse_tiling(value)
                d = replace(d, tiling=f"{shape[0]}x{shape[1]}" if shape else mode)
            elif key == "max_objects":
                d = replace(d, max_objects=int(value))
            elif key == "score_threshold":
                d = replace(d, score_threshold=float(value))
            elif key == "temperature":
                s = s.with_(temperature=float(value))
            elif key == "image_max_side":
                s = s.with_(image_max_side=int(value))
            elif key == "few_shot_cache":  # the examples in a Gemini context cache (gemini/ctxcache.py)
                s = s.with_(few_shot_cache=value.lower() in ("1", "true", "on", "yes"))
            elif key == "few_shot":
                if int(value) < 0:
                    raise VariantError(f"few_shot={value!r}: a number of examples, 0 or more")
                s = s.with_(few_shot_examples=int(value))
            else:
                raise VariantError(f"variant {text!r}: unknown key {key!r} (keys: {', '.join(KEYS)})")
    except ValueError as exc:
        if isinstance(exc, VariantError):
            raise
        raise VariantError(f"variant {text!r}: {exc}") from None
    return Variant(values.get("name") or f"v{index + 1}", s.with_(defaults=d), hints)


def with_hints(config: str, hints: Mapping[str, str]) -> str:
    if not hints:
        return config
    root = ET.fromstring(config)
    found = set()
    for el in root.iter():
        if el.tag in ("Label", "Choice") and el.get("value") in hints:
            el.set("hint", hints[el.get("value") or ""])
            found.add(el.get("value"))
    if missing := set(hints) - found:
        raise VariantError(f"hint for unknown label(s): {', '.join(sorted(missing))}")
    return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class GroundTruth:
    task: Mapping[str, Any]  # id + data: what the predictor needs
    result: Sequence[Mapping[str, Any]]


def ground_truth(tasks: Any, limit: int | None = None) -> list[GroundTruth]:
    """The latest non-skipped annotation of every annotated task."""
    out: list[GroundTruth] = []
    for task in tasks:
        annotations = [a for a in task.get("annotations") or () if not a.get("was_cancelled")]
        if not annotations:
            continue
        latest = max(annotations, key=lambda a: (str(a.get("updated_at") or ""), int(a.get("id") or 0)))
        out.append(GroundTruth({"id": task["id"], "data": task.get("data") or {}}, latest.get("result") or []))
        if limit is not None and len(out) >= limit:
            break
    return out


@dataclass(frozen=True)
class VariantResult:
    variant: Variant
    tally: Tally
    tasks: int
    failed: int
    input_tokens: float
    output_tokens: float
    latencies: tuple[float, ...]
    seconds: float
    few_shot_tokens: float = 0.0  # of input_tokens, what the few-shot examples added
    cached_tokens: float = 0.0  # of input_tokens, served from a context cache (billed at the cached rate)

    def cost_per_task(self) -> float | None:
        # the one price table (gemini/pricing.py, GEMINI_PRICES overrides) at GEMINI_MODEL's rate: an
        # estimate for comparing variants, not a bill; an unknown model shows no cost
        settings = self.variant.settings
        price = price_for(settings.model, settings.price_overrides)
        if price is None or not self.tasks:
            return None
        tokens = Tokens(prompt=int(self.input_tokens), output=int(self.output_tokens), cached=int(self.cached_tokens))
        return usd_of(price, tokens) / self.tasks


def split_examples(tasks: Sequence[Mapping[str, Any]], variants: Sequence[Variant]) -> tuple[list[Example], set[int]]:
    """The examples the variants need (the most any asks for) and their task ids, which no variant
    is evaluated on: an example graded on itself would flatter few-shot."""
    k = max((v.settings.few_shot_examples for v in variants), default=0)
    if k <= 0:
        return [], set()
    examples = examples_from_tasks(tasks)[:k]
    return examples, {e.task_id for e in examples}


def run_variant(variant: Variant, config: str, truth: Sequence[GroundTruth], chunk: int = 16,
                examples: Sequence[Example] = ()) -> VariantResult:
    from ..pipeline import build_pipeline
    from .loop import build_review

    spec = parse_label_config(with_hints(config, variant.hints), variant.settings.defaults)
    pipeline = build_pipeline(variant.settings)
    learner = build_review(pipeline.settings, pipeline.credentials, pipeline.metrics, pipeline.few_shot).learner
    learned = LearnedState(examples=tuple(examples[: variant.settings.few_shot_examples]))
    learner.remember(learned)  # the batch finds its examples by model_version
    spec = learned.applied(spec)  # the example set's tag: the same version a server would give
    version = pipeline.model_version(spec)
    total = Tally()
    failed = 0
    latencies: list[float] = []
    started = time.monotonic()
    try:
        for i in range(0, len(truth), chunk):
            part = truth[i : i + chunk]
            outcomes = pipeline.runner.run([g.task for g in part], spec, version, pipeline.fetch,
                                          deadline=time.monotonic() + variant.settings.predict_timeout)
            for g, o in zip(part, outcomes):
                if not o.succeeded:
                    failed += 1
                    continue
                latencies.append(o.seconds)
                total = total.plus(tally(match_regions(list(o.result or ()), g.result)))
    finally:
        pipeline.close()
    reg = pipeline.metrics.registry

    def tokens(direction: str) -> float:
        return reg.get_sample_value("gemini_ls_gemini_tokens_total", {"direction": direction}) or 0.0

    few_shot = reg.get_sample_value("gemini_ls_few_shot_input_tokens_total") or 0.0
    return VariantResult(variant, total, len(truth), failed, tokens("input"), tokens("output") + tokens("thoughts"),
                         tuple(latencies), time.monotonic() - started, few_shot, tokens("cached"))


def _f(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def settings_line(variant: Variant) -> str:
    """The variant's settings in one line (the table's and the stored scorecard's)."""
    s = variant.settings
    desc = f"{s.model}, max_objects={s.defaults.max_objects}, score_threshold={s.defaults.score_threshold:g}"
    if s.media_resolution:
        desc += f", media_resolution={s.media_resolution}"
    if s.few_shot_examples:
        desc += f", few_shot={s.few_shot_examples}"
    if variant.hints:
        desc += ", hints: " + "; ".join(f"{k}={v}" for k, v in variant.hints.items())
    return desc


def render(results: Sequence[VariantResult]) -> str:
    """One row per label, P / R / IoU per variant; then tokens, cost and latency."""
    labels = sorted({label for r in results for label in r.tally.labels})
    head = ["label", *(f"{r.variant.name} {m}" for r in results for m in ("P", "R", "IoU"))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for label in [*labels, "all"]:
        cells = [label]
        for r in results:
            st = r.tally.total() if label == "all" else r.tally.labels.get(label)
            cells += [_f(st.precision), _f(st.recall), _f(st.mean_iou)] if st else ["-", "-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| variant | settings | tasks | failed | input tokens/task | of which few-shot | output tokens/task "
                 "| est. USD/task | latency p50 s | latency p95 s |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        lat = sorted(r.latencies)
        p50 = statistics.median(lat) if lat else None
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None
        n = max(1, r.tasks)
        desc = settings_line(r.variant)
        cost = r.cost_per_task()
        lines.append(f"| {r.variant.name} | {desc} | {r.tasks} | {r.failed} | {r.input_tokens / n:.0f} | "
                     f"{r.few_shot_tokens / n:.0f} | {r.output_tokens / n:.0f} | "
                     f"{_f(cost, '.6f')} | {_f(p50, '.2f')} | {_f(p95, '.2f')} |")
    return "\n".join(lines)
