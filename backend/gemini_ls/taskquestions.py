"""The question a task asks: a TextArea bound to a `<Text>` question (Label Studio's
visual-question-answering template) is answered about the image, the question read from the task's
data each time (`<Text name="q1" value="$q1"/>` -> data["q1"]).

The plan of such a control is the project's (its model_version does not move with the questions);
`asked` makes the copy sent for one task. A task without that question (key missing, null or blank)
asks nothing there: no request, no answer (`unasked`). A question that is not text, or longer than
QUESTION_MAX_CHARS, fails its own task with the reason before any Gemini call (predict.py), never
the selection: a 1 MB "question" is bad data, not something to truncate silently and answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .plan import PlannedRequest

QUESTION_MAX_CHARS = 4000  # about 1,000 tokens: far above a real question, far below a prompt's room


class QuestionError(ValueError):
    """The task's question cannot be asked (not text, or too long); the message names the data key."""


def _question_key(plan: PlannedRequest) -> str | None:
    question = plan.controls[0].question if len(plan.controls) == 1 else None
    return question.value_key if question is not None else None


def _raw(task: Mapping[str, Any], key: str) -> Any:
    data = task.get("data")
    return data.get(key) if isinstance(data, Mapping) else None


def unasked(plans: Sequence[PlannedRequest], task: Mapping[str, Any]) -> frozenset[int]:
    """Indexes of the plans whose question this task does not have (missing, null or blank)."""
    out = set()
    for index, plan in enumerate(plans):
        key = _question_key(plan)
        if key is None:
            continue
        raw = _raw(task, key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            out.add(index)
    return frozenset(out)


def asked(plan: PlannedRequest, task: Mapping[str, Any], max_chars: int = QUESTION_MAX_CHARS) -> PlannedRequest:
    """`plan` with the task's question in its prompt (a plan of no question as it is). Call it for
    asked plans only (`unasked`); raises QuestionError for a question that is not text or too long."""
    key = _question_key(plan)
    if key is None:
        return plan
    raw = _raw(task, key)
    name = plan.controls[0].name
    if not isinstance(raw, str):
        raise QuestionError(f"the question data[{key!r}] of <TextArea name={name!r}> is a {type(raw).__name__}, not text")
    if len(raw) > max_chars:
        raise QuestionError(
            f"the question data[{key!r}] of <TextArea name={name!r}> is {len(raw):,} characters, above the "
            f"{max_chars:,} a question may have (QUESTION_MAX_CHARS)"
        )
    question = f"Question about the image: {' '.join(raw.split())}\nAnswer the question briefly, in a few words."
    if plan.question:  # the control's model_prompt, as guidance beside the question
        question = f"{plan.question.strip()}\n{question}"
    return replace(plan, question=question)
