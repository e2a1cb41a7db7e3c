"""Annotations as the review loop reads them.

* `annotation`: one annotation (GET /api/annotations/{id}): the webhook reads it when Label Studio
  sent no payload, the few-shot source for its result;
* `annotated_tasks`: every annotated task of a project with its annotations (each with its
  `created_at` / `updated_at`, `was_cancelled`, `parent_prediction`) and its predictions, paged:
  `gemini-ls report` and `evaluate` compute from it.

What an annotation looked like before its last change is not read: Label Studio 1.23 (the open
source edition) has no annotation-history endpoint (`/api/annotation-history/` is Enterprise's), so
the review loop keeps its own record of each annotation's last contribution (review/ledger.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .tasks import iter_tasks

if TYPE_CHECKING:
    from .client import LabelStudioApi


def annotation(api: LabelStudioApi, annotation_id: int) -> dict:
    return api.request("GET", f"/api/annotations/{int(annotation_id)}") or {}


def annotated_tasks(api: LabelStudioApi, project: int, *, page_size: int = 100) -> Iterator[dict]:
    """Every annotated task of the project with its annotations and predictions."""
    yield from iter_tasks(api, project, fields="all", only_annotated=True, page_size=page_size)
