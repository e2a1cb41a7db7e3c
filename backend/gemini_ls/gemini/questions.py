"""Questions about the image asked together (VQA): the prompt and the parser of a `text` request
whose plan carries the task's questions (`PlannedRequest.asked_questions`, taskquestions.py).

One request answers every question the task has about its image(s), as a JSON list of
{"question": <TextArea name>, "answer": <a few words>}; the answers go to their TextAreas by name
(regions/textarea.py). A plain-text reply to a single question is that question's answer.
"""

from __future__ import annotations

import json

from ..detections import ParsedAnswer
from ..plan import PlannedRequest
from .lenient_json import load_answer, normalise_finish_reason, unwrap_items
from .parse import parse_text
from .prompts import Prompt


def _schema(names: list[str]) -> dict:
    return {
        "type": "ARRAY",
        "items": {
            "type": "OBJECT",
            "properties": {"question": {"type": "STRING", "enum": names}, "answer": {"type": "STRING"}},
            "required": ["question", "answer"],
            "propertyOrdering": ["question", "answer"],
        },
    }


def questions_prompt(plan: PlannedRequest, n_images: int = 1) -> Prompt:
    what = "these images" if n_images > 1 else "the image"
    lines = "\n".join(f"- {json.dumps(name, ensure_ascii=False)}: {question}" for name, question in plan.asked_questions)
    user = (
        (plan.question.strip() + "\n" if plan.question else "")
        + f"Answer each question about {what} briefly, in a few words (question name, then the question):\n"
        f"{lines}\n"
        'Output a JSON list with one entry per question: its name in "question" and your answer in "answer".'
    )
    return Prompt(system=None, user=user, json_mode=True, response_schema=_schema([n for n, _ in plan.asked_questions]))


def asks_questions(plan: PlannedRequest) -> bool:
    """A plan of TextAreas answering `<Text>` questions: as sent for a task (`asked_questions`), or as
    planned (the Batch API reads its answers back with the project's plan)."""
    return bool(plan.asked_questions) or any(c.question is not None for c in plan.controls)


def parse_answers(text: str | None, plan: PlannedRequest, finish_reason: str | None = None) -> ParsedAnswer:
    """Each asked question's answer (whitespace collapsed), by TextArea name; an entry naming no
    question of the plan, or with no answer, is dropped ("not_an_object")."""
    names = {name for name, _ in plan.asked_questions} or {c.name for c in plan.controls if c.question is not None}
    value, truncated, _lost, found = load_answer(text, finish_reason)
    items = unwrap_items(value) if found else None
    if items is None and isinstance(value, dict):
        items = [{"question": k, "answer": v} for k, v in value.items()]  # {"answer1": "2", ...}
    if items is None:
        single = parse_text(text, finish_reason)  # one question answered in prose
        if len(names) == 1 and single.text:
            return ParsedAnswer(answers=((next(iter(names)), single.text),), truncated=single.truncated)
        return ParsedAnswer(truncated=truncated or normalise_finish_reason(finish_reason) == "MAX_TOKENS",
                            dropped={"no_json": 1} if text and text.strip() else {})
    answers: dict[str, str] = {}
    bad = 0
    for item in items:
        name = item.get("question") if isinstance(item, dict) else None
        answer = item.get("answer") if isinstance(item, dict) else None
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            answer = f"{answer:g}"
        if name in names and isinstance(answer, str) and answer.strip() and name not in answers:
            answers[name] = " ".join(answer.split())
        else:
            bad += 1
    return ParsedAnswer(answers=tuple(answers.items()), truncated=truncated, dropped={"not_an_object": bad} if bad else {})
