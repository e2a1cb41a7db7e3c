"""One table of request kinds: for each, the prompt Gemini gets, the parser of its answer and the
room it may answer in. Adding a kind means adding one row here (and its RequestKind member).

Output room, before thinking (client.generation_config adds the thinking allowance on top, since
on thinking models the thinking tokens come out of the same budget, python-genai#811): masks are a
few hundred tokens each and up to max_objects (25 by default) of them; boxes about 30 tokens each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from ..detections import ParsedAnswer, RequestKind
from ..plan import PlannedRequest
from ..textunits import with_unit
from .dynprompts import adapt, with_reference_hints
from .labels import LabelMatcher
from .numbers import number_prompt, parse_number
from .parse import parse_choices, parse_detections, parse_text
from .prompts import (
    Prompt,
    choice_prompt,
    detection_prompt,
    pointing_prompt,
    segmentation_prompt,
    text_prompt,
    with_image_index,
)
from .questions import asks_questions, parse_answers, questions_prompt

# (plan, number of images sent) -> prompt
PromptBuilder = Callable[[PlannedRequest, int], Prompt]
# (answer text, plan, finish reason, number of images sent) -> parsed answer
AnswerParser = Callable[[str, PlannedRequest, "str | None", int], ParsedAnswer]


@dataclass(frozen=True)
class KindSpec:
    kind: RequestKind
    prompt: PromptBuilder
    parse: AnswerParser
    output_tokens: int


def _extra(plan: PlannedRequest) -> str | None:
    """A spatial prompt's extra text: the unit of text one entry is (when reading text), `model_prompt`."""
    return with_unit(plan.question, plan.text_unit)


def _spatial_parser(*, masks: bool, points: bool) -> AnswerParser:
    def parse(text: str, plan: PlannedRequest, finish_reason: str | None, n_images: int) -> ParsedAnswer:
        return parse_detections(
            text, matcher=LabelMatcher(plan.labels, synonyms=plan.synonyms), finish_reason=finish_reason,
            want_masks=masks, want_points=points, n_images=n_images, asked=plan.attributes,
        )

    return parse


KINDS: Mapping[RequestKind, KindSpec] = MappingProxyType({
    spec.kind: spec
    for spec in (
        KindSpec(
            RequestKind.BOXES,
            prompt=lambda plan, n: detection_prompt(plan.labels, plan.max_objects, _extra(plan), plan.attributes),
            parse=_spatial_parser(masks=False, points=False),
            output_tokens=8192,
        ),
        KindSpec(
            RequestKind.MASKS,
            prompt=lambda plan, n: segmentation_prompt(plan.labels, plan.max_objects, _extra(plan), plan.attributes),
            parse=_spatial_parser(masks=True, points=False),
            output_tokens=32768,
        ),
        KindSpec(
            RequestKind.POINTS,
            prompt=lambda plan, n: pointing_prompt(plan.labels, plan.max_objects, _extra(plan), plan.attributes),
            parse=_spatial_parser(masks=False, points=True),
            output_tokens=4096,
        ),
        KindSpec(
            RequestKind.CHOICE,
            prompt=lambda plan, n: choice_prompt(plan.labels, plan.multiple, plan.question, n),
            parse=lambda text, plan, finish, n: parse_choices(
                text, plan.labels, plan.multiple, finish_reason=finish, synonyms=plan.synonyms),
            output_tokens=1024,
        ),
        KindSpec(
            RequestKind.TEXT,
            # a caption, or the task's questions about the image asked together (VQA, gemini/questions.py)
            prompt=lambda plan, n: questions_prompt(plan, n) if asks_questions(plan) else text_prompt(plan.question, n),
            parse=lambda text, plan, finish, n: (
                parse_answers(text, plan, finish) if asks_questions(plan) else parse_text(text, finish)),
            output_tokens=2048,
        ),
        KindSpec(
            RequestKind.NUMBER,
            prompt=lambda plan, n: number_prompt(plan.question, plan.controls[0].scale, n),
            parse=lambda text, plan, finish, n: parse_number(text, plan.controls[0].scale, finish),
            output_tokens=256,
        ),
    )
})

# Every RequestKind has exactly one row: a new member without one fails at import, not mid-batch.
assert set(KINDS) == set(RequestKind), f"request kinds without a row in KINDS: {set(RequestKind) - set(KINDS)}"


def prompt_for(plan: PlannedRequest, n_images: int) -> Prompt:
    """The prompt of `plan` sent with `n_images` images, carrying the plan's media resolution
    (model_media_resolution / GEMINI_MEDIA_RESOLUTION) for wire.build_request."""
    prompt = adapt(KINDS[plan.kind].prompt(with_reference_hints(plan, n_images), n_images), plan, n_images)
    searched = n_images - len(plan.references)  # reference pictures follow the searched images (dynprompts.py)
    if searched > 1 and not plan.kind.per_task:  # a multi-page document's pages in one request (pages.py)
        prompt = with_image_index(prompt, searched)
    return replace(prompt, media_resolution=plan.media_resolution) if plan.media_resolution else prompt
