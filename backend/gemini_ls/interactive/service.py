"""Interactive pre-annotation: the annotator's click, box or phrase -> regions, in ONE Gemini call.

- clicks (positive/negative keypoints): the ONE object under them, as a mask and/or polygon (or a
  rectangle) per the config's controls, with the label the annotator chose; more clicks refine it;
- a drawn box: the object inside it, asked on a crop of the box with a margin (crop.py), mapped
  back to the whole image;
- a phrase typed in a TextArea ("the red circles"): every object matching it, each with the label
  of the list it fits (conversational segmentation).

Output controls are the BrushLabels, PolygonLabels and RectangleLabels bound to the image drawn on,
except the control the prompt came from and smart (prompting) ones unless nothing else is left; for
a click or box, only those that have the chosen label.
Segmentation goes to GEMINI_MASK_MODEL when any mask control is among them, else boxes to
GEMINI_MODEL (control overrides apply). The request goes through the predictor's own ask / region /
validation steps, so parsing, label matching, metrics and Label Studio validation are the batch's.

The fetched and prepared image is kept for the last few tasks, and the full-resolution decode (for
box crops) for the last two: an annotator clicks several times on one image, and only the first
interaction pays for the download and decode.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..detections import ImageMeta, ParsedAnswer, RequestKind
from ..dynlabels import DynamicLabelsError, task_labels
from ..images.errors import ImageError
from ..images.prepare import PreparedImage, prepare_image
from ..labelconfig import ControlSpec, LabelSpec, ProjectSpec
from ..plan import PlannedRequest, union_labels
from ..predict import Fetch, Predictor, TaskFailure, TaskOutcome, image_refs
from ..settings import Settings
from .choose import Choice, choose, percent_box, percent_point
from .context import ContextError, Interaction, parse_context
from .crop import crop_frame, crop_image, decode_oriented
from .prompts import box_instruction, click_instruction, phrase_instruction

log = logging.getLogger(__name__)
OUTPUT_TAGS = ("BrushLabels", "PolygonLabels", "RectangleLabels")
_MASK_TAGS = ("BrushLabels", "PolygonLabels")
CACHE_IMAGES = 8  # prepared (downscaled) images kept, a few hundred kB each
CACHE_PIXELS = 2  # full-resolution decodes kept for box crops (36 MB for 12 MP)
_OUT_OF_TIME = frozenset({"gemini_timeout", "gemini_deadline", "timeout"})
DEADLINE_SLACK = 1.0  # seconds: a failure this close to the deadline is the deadline's doing


@dataclass(frozen=True)
class Timings:
    total: float  # seconds for the whole interaction
    gemini: float  # seconds inside the Gemini call (request, wait, answer parsing)

    @property
    def backend(self) -> float:
        return max(0.0, self.total - self.gemini)


@dataclass(frozen=True)
class _Source:
    raw: bytes
    prepared: PreparedImage


class InteractiveService:
    def __init__(self, predictor: Predictor, settings: Settings, fetch: Fetch) -> None:
        self.predictor = predictor
        self.settings = settings
        self.fetch = fetch
        self._lock = threading.Lock()
        self._images: OrderedDict[tuple, _Source] = OrderedDict()
        self._pixels: OrderedDict[tuple, np.ndarray] = OrderedDict()

    # -- public --------------------------------------------------------------------------------
    def predict(self, task: Mapping[str, Any], spec: ProjectSpec, context: Mapping[str, Any] | None, *,
                deadline: float) -> TaskOutcome | None:
        """The regions for what the annotator drew; None when nothing is drawn yet (the caller then
        predicts the whole task). Never raises: failures are outcomes, as in the batch."""
        outcome, _ = self.run(task, spec, context, deadline=deadline)
        return outcome

    def run(self, task: Mapping[str, Any], spec: ProjectSpec, context: Mapping[str, Any] | None, *,
            deadline: float) -> tuple[TaskOutcome | None, Timings]:
        started = time.monotonic()
        task_id = task.get("id")
        gemini = 0.0
        try:
            try:
                interaction = parse_context(context)
            except ContextError as exc:
                raise TaskFailure("context", str(exc)) from exc
            if interaction.empty:
                return None, Timings(time.monotonic() - started, 0.0)
            spec = self._with_task_labels(spec, task)
            image_name = self._image_name(spec, interaction)
            outputs = self._outputs(spec, interaction, image_name)
            source = self._source(task, spec, image_name)
            plan, image, frame = self._plan(interaction, outputs, image_name, source)
            asked = time.monotonic()
            answer = self.predictor._ask(plan, [image], {image.sha256: 1}, deadline, task_id)
            gemini = time.monotonic() - asked
            if frame is not None:
                answer = frame.to_image(answer)
            chosen = None
            if interaction.kind != "phrase":
                answer, chosen = _one_object(answer, interaction, plan.labels[0].value, outputs[0].settings.mask_threshold)
            metas = {image_name: ImageMeta(image_name, source.prepared.width, source.prepared.height)}
            results: list[dict] = []
            for control in outputs:
                results.extend(self.predictor._regions(plan, control, metas, answer))
            results = self.predictor._validate(spec, results, task_id)
            for region in results:
                self.predictor.metrics.regions.labels(region.get("type", "?")).inc()
            scores = [r["score"] for r in results if isinstance(r.get("score"), (int, float))]
            outcome = TaskOutcome(
                task_id, "ok" if results else "empty", result=tuple(results),
                error=chosen.message if chosen is not None and not results else None,
                score=round(sum(scores) / len(scores), 4) if scores else None, seconds=time.monotonic() - started,
            )
        except TaskFailure as exc:
            message = exc.message
            if exc.reason in _OUT_OF_TIME or time.monotonic() >= deadline - DEADLINE_SLACK:
                # the annotator sees this: name the setting that cut it short
                message = f"not finished within PREDICT_TIMEOUT={self.settings.predict_timeout:g}s: {message}"
            outcome = TaskOutcome(task_id, "failed", error=message, reason=exc.reason, seconds=time.monotonic() - started)
        return outcome, Timings(time.monotonic() - started, gemini)

    # -- steps ---------------------------------------------------------------------------------
    def _with_task_labels(self, spec: ProjectSpec, task: Mapping[str, Any]) -> ProjectSpec:
        """`spec` with the labels of this task in its controls that read them from it (dynlabels.py)."""
        if not any(c.labels_field for c in spec.controls):
            return spec
        data = task.get("data")
        data = data if isinstance(data, Mapping) else {}
        try:
            controls = tuple(replace(c, labels=task_labels(c, data, self.settings.max_dynamic_labels)) for c in spec.controls)
        except DynamicLabelsError as exc:
            raise TaskFailure("task_labels", f"task {task.get('id')}: {exc}") from exc
        return replace(spec, controls=controls)

    @staticmethod
    def _image_name(spec: ProjectSpec, interaction: Interaction) -> str:
        names = [i.name for i in spec.images]
        if interaction.image is not None:
            if interaction.image not in names:
                raise TaskFailure("context", f"the annotator drew on {interaction.image!r}, which is not an <Image> of the config")
            return interaction.image
        for control in spec.controls:  # a phrase names no image: the first one an output control covers
            if control.tag in OUTPUT_TAGS:
                return control.to_names[0]
        return names[0]

    @staticmethod
    def _outputs(spec: ProjectSpec, interaction: Interaction, image: str) -> list[ControlSpec]:
        spatial = [c for c in spec.controls if c.tag in OUTPUT_TAGS and image in c.to_names]
        if interaction.kind != "phrase" and interaction.label is not None:
            spatial = [c for c in spatial if any(label.value == interaction.label for label in c.labels)]
        # The control the prompt came from and smart (prompting) controls get results only when
        # nothing else would (a RectangleLabels-only project: the drawn box comes back fitted).
        others = [c for c in spatial if c.name not in interaction.sources]
        outputs = [c for c in others if not c.smart] or others or spatial
        if not outputs:
            wanted = f" with the label {interaction.label!r}" if interaction.label and interaction.kind != "phrase" else ""
            raise TaskFailure("context", f"the config has no BrushLabels, PolygonLabels or RectangleLabels control "
                                         f"on {image!r}{wanted} to put the interactive result in")
        return outputs

    def _source(self, task: Mapping[str, Any], spec: ProjectSpec, image: str) -> _Source:
        ref = image_refs(task, spec, [image])[image]
        key = (task.get("id"), ref)
        with self._lock:
            found = self._images.get(key)
            if found is not None:
                self._images.move_to_end(key)
                return found
        try:
            raw = self.fetch(ref, task.get("id"))
            prepared = prepare_image(raw, name=image, max_side=self.settings.image_max_side,
                                     max_pixels=self.settings.image_max_pixels)
        except ImageError as exc:
            raise TaskFailure(f"image_{exc.reason}", f"image {image!r}: {exc}") from exc
        source = _Source(raw, prepared)
        with self._lock:
            self._images[key] = source
            while len(self._images) > CACHE_IMAGES:
                self._images.popitem(last=False)
        return source

    def _full_pixels(self, source: _Source) -> np.ndarray:
        key = (source.prepared.sha256, len(source.raw))
        with self._lock:
            found = self._pixels.get(key)
            if found is not None:
                self._pixels.move_to_end(key)
                return found
        pixels = decode_oriented(source.raw)
        with self._lock:
            self._pixels[key] = pixels
            while len(self._pixels) > CACHE_PIXELS:
                self._pixels.popitem(last=False)
        return pixels

    def _plan(self, interaction: Interaction, outputs: list[ControlSpec], image: str, source: _Source):
        kind = RequestKind.MASKS if any(c.tag in _MASK_TAGS for c in outputs) else RequestKind.BOXES
        first = outputs[0].settings
        model = self.settings.routing.for_kind(kind, model_name=first.model_name, mask_name=first.model_mask_name).name
        frame = None
        sent = source.prepared
        if interaction.kind == "phrase":
            labels = union_labels(outputs)
            question = phrase_instruction(interaction.phrase or "")
            limit = max(c.settings.max_objects for c in outputs)
        else:
            labels = (_label_spec(outputs, interaction.label),)
            limit = 1
            if interaction.box is not None:
                frame = crop_frame(interaction.box, source.prepared.width, source.prepared.height)
                try:
                    sent = crop_image(self._full_pixels(source), frame, name=image)
                except Exception as exc:  # PIL: the bytes decoded once already; anything here is a bad file
                    raise TaskFailure("image_corrupt", f"image {image!r}: could not crop it ({type(exc).__name__})") from exc
                question = box_instruction(frame.box_in_crop(interaction.box), labels[0].value)
            else:
                question = click_instruction(interaction.clicks, labels[0].value)
        plan = PlannedRequest(kind=kind, image_names=(image,), controls=tuple(outputs), labels=labels,
                              max_objects=limit, question=question, model=model)
        return plan, sent, frame


def _label_spec(outputs: list[ControlSpec], label: str | None) -> LabelSpec:
    for control in outputs:
        for spec in control.labels:
            if label is None or spec.value == label:
                return spec
    return LabelSpec(label or "object")


def _one_object(answer: ParsedAnswer, interaction: Interaction, label: str, threshold: int) -> tuple[ParsedAnswer, Choice]:
    """A click or box asks for ONE object: the entry under the annotator's points or in their box
    (choose.py; a model may answer several), with the annotator's label."""
    points = [percent_point(c.x, c.y, c.positive) for c in interaction.clicks]
    drawn = interaction.box
    box = percent_box(drawn.x, drawn.y, drawn.width, drawn.height) if drawn is not None else None
    choice = choose(answer.detections, points, box, threshold=threshold)
    if choice.message is not None and answer.detections:
        log.info("interactive %s: %s (%d entries answered)", interaction.kind, choice.message, len(answer.detections))
    kept = () if choice.index is None else (replace(answer.detections[choice.index], label=label),)
    return replace(answer, detections=kept, derived={}), choice
