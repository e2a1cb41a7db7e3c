"""The questions a task asks: the TextAreas bound to `<Text>` questions (Label Studio's
visual-question-answering template) are answered about the image, each question read from the task's
data each time (`<Text name="q1" value="$q1"/>` -> data["q1"]); those on the same images share one
request (plan.py), so the image is sent once per task, not once per question.

The plan is the project's (its model_version does not move with the questions); `asked` makes the
copy sent for one task, with the questions that task has. A question missing, null or blank in the
task is not asked (no answer); a plan none of whose questions the task has is not sent (`unasked`).
A question that is not text, or longer than QUESTION_MAX_CHARS, fails its own task with the reason
before any Gemini call (predict.py), never the selection: a 1 MB "question" is bad data, not
something to truncate silently and answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .labelconfig import ControlSpec
from .plan import PlannedRequest

QUESTION_MAX_CHARS = 4000  # about 1,000 tokens: far above a real question, far below a prompt's room


class QuestionError(ValueError):
    """The task's question cannot be asked (not text, or too long); the message names the data key."""


def _raw(task: Mapping[str, Any], control: ControlSpec) -> Any:
    data = task.get("data")
    assert control.question is not None
    return data.get(control.question.value_key) if isinstance(data, Mapping) else None


def _has(task: Mapping[str, Any], control: ControlSpec) -> bool:
    raw = _raw(task, control)
    return not (raw is None or (isinstance(raw, str) and not raw.strip()))


def _questions(plan: PlannedRequest) -> tuple[ControlSpec, ...]:
    return tuple(c for c in plan.controls if c.question is not None)


def unasked(plans: Sequence[PlannedRequest], task: Mapping[str, Any]) -> frozenset[int]:
    """Indexes of the question plans none of whose questions this task has (missing, null or blank)."""
    return frozenset(i for i, plan in enumerate(plans)
                     if (mine := _questions(plan)) and not any(_has(task, c) for c in mine))


def _checked(task: Mapping[str, Any], control: ControlSpec, max_chars: int) -> str:
    raw, key = _raw(task, control), control.question.value_key if control.question else ""
    if not isinstance(raw, str):
        raise QuestionError(f"the question data[{key!r}] of <TextArea name={control.name!r}> is a {type(raw).__name__}, not text")
    if len(raw) > max_chars:
        raise QuestionError(
            f"the question data[{key!r}] of <TextArea name={control.name!r}> is {len(raw):,} characters, above the "
            f"{max_chars:,} a question may have (QUESTION_MAX_CHARS)"
        )
    return " ".join(raw.split())


def asked(plan: PlannedRequest, task: Mapping[str, Any], max_chars: int = QUESTION_MAX_CHARS) -> PlannedRequest:
    """`plan` as sent for `task`: with the questions the task has (`asked_questions`), its controls
    those questions' (a plan of no question as it is). Call it for asked plans only (`unasked`);
    raises QuestionError for a question that is not text or too long."""
    if not _questions(plan):
        return plan
    controls = tuple(c for c in plan.controls if _has(task, c))
    questions = tuple((c.name, _checked(task, c, max_chars)) for c in controls)
    return replace(plan, controls=controls, asked_questions=questions, max_objects=len(controls))
