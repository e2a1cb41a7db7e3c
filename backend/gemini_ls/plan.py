"""Which Gemini requests a project's controls need: as few as possible, without losing accuracy.

Rules (the accuracy of combining is measured by tests/benchmarks/bench_combined.py):
- Rectangle, brush and polygon controls on the same image WITH THE SAME LABEL SET share ONE request:
  segmentation when any of them needs masks (a segmentation answer carries `box_2d` too), detection
  otherwise. Controls with different label sets are never merged: Gemini names each object once,
  so an object answering to two labels ("Purple" in one control, "Circle" in another) would be
  lost to one of the controls.
- Keypoint controls on one image with the same label set share one pointing request.
- Each Choices and TextArea control gets its own request (its own options or question), with all of
  its images in that one prompt, so "what differs" and pair classification see both images. The
  TextAreas answering `<Text>` questions (VQA) on the same images share ONE request: the image is
  sent once and every question the task has is answered in one JSON list (taskquestions.py).
- A detection control bound to several images is asked once per image.
- Controls with different `model_prompt` extras are not merged (the extra text changes the answer),
  nor controls naming different models (`model_name` / `model_mask_name`).
- Controls reading text at different units (`model_ocr_granularity`, textunits.py) are not merged.
- Controls with different `model_tiling` / `model_media_resolution` are not merged either. Tiling
  applies to spatial plans only (predict.py cuts the image per tiling/grid.py); choices, captions
  and points are asked once on the whole image.
- Each plan names its model: GEMINI_MASK_MODEL for segmentation, GEMINI_MODEL for the rest, unless a
  control overrides it (the provider's `ModelChooser`, gemini/models.py `ModelRouting`). Without a routing the model stays None
  and the caller's default model answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .detections import ParsedAnswer, RequestKind
from .labelconfig import AttributeSpec, ControlSpec, LabelSpec, ProjectSpec
from .textunits import text_unit


class ModelChooser(Protocol):
    """Which model answers a request of `kind`, given a control's model_name / model_mask_name
    overrides (the provider's routing table, e.g. gemini/models.py `ModelRouting`)."""

    def model_for(self, kind: RequestKind, *, model_name: str | None = None, mask_name: str | None = None) -> str: ...


@dataclass(frozen=True)
class PlanExample:
    """A reviewed annotation shown to the model as a worked example (few-shot, review/fewshot.py):
    its images (images/prepare.PreparedImage, one per image of the plan, in the plan's order) and
    the answer the plan's request should get for them, typed (the annotator's regions of the plan's
    controls read back, only the plan's labels, at most its max_objects; empty when none of them
    fits the request). `key` names it stably."""

    key: str
    images: tuple[Any, ...]
    answer: ParsedAnswer
    task_id: Any = None  # the example's own task: never shown as an example to itself


def example_set_tag(keys: Sequence[str]) -> str:
    """An example set's digest ("e" + 8 hex over its examples' keys, which callers sort): part of
    model_version, and the key of its usage record. Provider-neutral: the chooser (review/fewshot.py)
    and the provider (its usage record) name a set alike."""
    return "e" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class PlannedRequest:
    kind: RequestKind
    image_names: tuple[str, ...]
    controls: tuple[ControlSpec, ...]
    labels: tuple[LabelSpec, ...]
    max_objects: int
    question: str | None = None
    multiple: bool = False
    model: str | None = None  # the model to call (as the provider's routing resolved it), None: the provider's default
    # per-region controls asked in the same JSON items as the regions, with the labels each is asked
    # for (None: every label), see `region_attributes`
    attributes: tuple[tuple[AttributeSpec, tuple[str, ...] | None], ...] = ()
    tiling: str = "off"  # spatial plans: off | auto | RxC (tiling/grid.py); others always "off"
    media_resolution: str | None = None  # per image part (3.x) or request-wide (2.x); None: the model default
    # labels from the task (dynlabels.py), set per task: the labels whose reference pictures follow the
    # plan's images in the request, in that order; and whether the labels are phrases to ground
    # (one region each) rather than classes of objects
    references: tuple[str, ...] = ()
    phrases: bool = False
    text_unit: str | None = None  # reading text: one entry is a line | word | block (textunits.py), None: no text
    # worked examples put before the request (few-shot); not part of the plan's identity
    examples: tuple[PlanExample, ...] = field(default=(), compare=False)
    # VQA: (TextArea name, the task's question) as sent for one task (taskquestions.asked), () as planned
    asked_questions: tuple[tuple[str, str], ...] = ()

    @property
    def synonyms(self) -> tuple[tuple[str, str], ...]:
        """The review loop's learned synonyms of the plan's labels (labelconfig.LabelTuning), for the
        label matcher; controls sharing a plan share their labels, hence their synonyms."""
        return tuple(sorted({pair for control in self.controls for pair in control.tuning.synonyms}))

    def for_task(self, task_id: Any) -> PlannedRequest:
        """This plan as sent for `task_id`: without the example of that very task (it would copy its own
        annotation and flatter the review numbers)."""
        if not any(e.task_id == task_id for e in self.examples):
            return self
        return replace(self, examples=tuple(e for e in self.examples if e.task_id != task_id))


def _model_for(routing: ModelChooser | None, kind: RequestKind, controls: Sequence[ControlSpec]) -> str | None:
    if routing is None:
        return None
    first = controls[0].settings  # grouped controls share their overrides
    return routing.model_for(kind, model_name=first.model_name, mask_name=first.model_mask_name)


def union_labels(controls: list[ControlSpec]) -> tuple[LabelSpec, ...]:
    seen: dict[str, LabelSpec] = {}
    for control in controls:
        for label in control.labels:
            known = seen.get(label.value)
            # Keep the most descriptive spelling when two controls describe one label.
            if known is None or (label.hint and not known.hint):
                seen[label.value] = label
    return tuple(seen.values())


def region_attributes(controls: Sequence[ControlSpec]) -> tuple[tuple[AttributeSpec, tuple[str, ...] | None], ...]:
    """The per-region controls a request asks for, each with the labels it is asked for (None: all):
    the union over the controls sharing the request (whenTagName may name one of them only)."""
    out: dict[str, tuple[AttributeSpec, set[str] | None]] = {}
    for control in controls:
        for spec in control.attributes:
            labels = spec.labels_for(control)
            known = out.get(spec.name)
            if known is None:
                out[spec.name] = (spec, None if labels is None else set(labels))
            elif known[1] is not None:
                out[spec.name] = (spec, None if labels is None else known[1] | set(labels))
    return tuple(
        (spec, None if labels is None else tuple(sorted(labels))) for spec, labels in out.values()
    )


def images_needed(plans: Sequence[PlannedRequest]) -> tuple[str, ...]:
    """Names of the <Image>s the plans send to Gemini, sorted (each is fetched once per task)."""
    return tuple(sorted({name for plan in plans for name in plan.image_names}))


def plan_requests(spec: ProjectSpec, routing: ModelChooser | None = None) -> tuple[PlannedRequest, ...]:
    plans: list[PlannedRequest] = []
    for image in spec.images:
        groups: dict[tuple, list[ControlSpec]] = {}
        for control in spec.controls:
            if image.name not in control.to_names:
                continue
            if control.kind.spatial:
                group = "spatial"
            elif control.kind is RequestKind.POINTS:
                group = "points"
            else:
                continue
            # labels from the task (value="$field") differ per task: only controls reading one field merge
            label_set = (frozenset((label.value, label.hint) for label in control.labels), control.labels_field)
            models = (control.settings.model_name, control.settings.model_mask_name)
            # controls asking different per-region questions are not merged: the answer's items
            # would carry attributes one of them must not show
            asked = tuple(sorted(spec.name for spec in control.attributes))
            seeing = (control.settings.tiling, control.settings.media_resolution)
            unit = text_unit(control.settings.ocr_granularity, ((a.tag, a.question) for a in control.attributes))
            groups.setdefault((group, control.settings.prompt, label_set, models, asked, seeing, unit), []).append(control)
        for (group, extra, _labels, _models, _asked, (tiling, resolution), unit), controls in groups.items():
            if group == "spatial":
                kind = (
                    RequestKind.MASKS
                    if any(c.kind is RequestKind.MASKS for c in controls)
                    else RequestKind.BOXES
                )
            else:
                kind = RequestKind.POINTS
            plans.append(
                PlannedRequest(
                    kind=kind,
                    image_names=(image.name,),
                    controls=tuple(controls),
                    labels=union_labels(controls),
                    max_objects=max(c.settings.max_objects for c in controls),
                    question=extra,
                    model=_model_for(routing, kind, controls),
                    attributes=region_attributes(controls),
                    tiling=tiling if group == "spatial" else "off",
                    media_resolution=resolution,
                    text_unit=unit,
                )
            )
    questions: dict[tuple, list[ControlSpec]] = {}
    for control in spec.controls:
        if control.kind.per_task and control.question is not None:  # VQA: one request per set of images
            s = control.settings
            questions.setdefault((control.to_names, s.prompt, s.model_name, s.media_resolution), []).append(control)
        elif control.kind.per_task:
            plans.append(
                PlannedRequest(
                    kind=control.kind,
                    image_names=control.to_names,
                    controls=(control,),
                    labels=control.labels,
                    max_objects=control.settings.max_objects,
                    question=control.settings.prompt,
                    multiple=control.multiple,
                    model=_model_for(routing, control.kind, (control,)),
                    media_resolution=control.settings.media_resolution,
                )
            )
    for (images, extra, _model, resolution), controls in questions.items():
        plans.append(PlannedRequest(
            kind=RequestKind.TEXT, image_names=images, controls=tuple(controls), labels=(), max_objects=len(controls),
            question=extra, model=_model_for(routing, RequestKind.TEXT, controls), media_resolution=resolution,
        ))
    return tuple(plans)


def request_budget_problem(plans: tuple[PlannedRequest, ...], limit: int) -> str | None:
    """Why a config needing len(plans) Gemini requests per task is refused (MAX_REQUESTS_PER_TASK),
    naming the controls to merge; None when it fits.

    Every request is sequential work for one task and paid for: without a cap, a config of 2,000
    differently labelled controls makes one task call Gemini 2,000 times.
    """
    if len(plans) <= limit:
        return None
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for plan in plans:
        for control in plan.controls:
            names = groups.setdefault((control.tag, plan.image_names), [])
            if control.name not in names:
                names.append(control.name)
    advice = []
    for (tag, images), names in sorted(groups.items(), key=lambda item: -len(item[1])):
        if len(names) < 2:
            continue
        shown = ", ".join(repr(n) for n in names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        advice.append(f"{len(names)} {tag} on {', '.join(images)} ({shown})")
        if len(advice) == 4:
            break
    how = (
        "merge " + "; ".join(advice) + " into one control each (controls of one kind on one image with the "
        "same labels share one request)"
        if advice
        else "use fewer Choices/TextArea controls or images (each takes its own request)"
    )
    return (
        f"this config needs {len(plans)} Gemini requests per task, above MAX_REQUESTS_PER_TASK={limit}: "
        f"{how}, or raise MAX_REQUESTS_PER_TASK"
    )
