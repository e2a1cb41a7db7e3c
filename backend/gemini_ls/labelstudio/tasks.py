"""A project's tasks, paged, and which model versions they hold.

* `iter_tasks`: GET /api/tasks (the Data Manager's list) page by page, in the project's order, for
  a whole project, a Data Manager view (`view`), some task ids (`selectedItems`) or a filter.
  Label Studio 1.23 answers `{"tasks": [...], "total": n}` and 404 for a page past the last.
* `tasks_holding`: which tasks already hold a prediction of one model_version, without reading
  every prediction: the Data Manager filter `predictions_model_versions contains <version>`. That
  filter is a substring match, so when another version of the project contains ours
  (`/api/projects/{id}/model-versions/`), each hit is confirmed on `/api/predictions?task=`.
* `project_tasks`: every task with its data and the versions it holds (`fields=all` carries the
  predictions), for the Batch API job.

The pure parts (`page_items`, `versions_held`, `version_filter`, `task_query`) are what the unit
tests pin down.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import LabelStudioApiError

if TYPE_CHECKING:
    from .client import LabelStudioApi

VERSION_FILTER = "filter:tasks:predictions_model_versions"
IDS_PER_QUERY = 500  # task ids per `selectedItems` query: keeps the URL well under servers' limits


def page_items(body: Any) -> tuple[list[dict], int | None]:
    """The tasks of one page of GET /api/tasks and the total it announces (None when it does not:
    an older Label Studio answers a bare list)."""
    if isinstance(body, Mapping):
        items = body.get("tasks")
        total = body.get("total")
        return (list(items) if isinstance(items, list) else []), (int(total) if isinstance(total, int) else None)
    return (list(body) if isinstance(body, list) else []), None


def versions_held(task: Mapping[str, Any]) -> frozenset[str]:
    """The model_versions of the predictions a task (as listed with `fields=all`) holds."""
    predictions = task.get("predictions") or ()
    return frozenset(str(p["model_version"]) for p in predictions
                     if isinstance(p, Mapping) and p.get("model_version") not in (None, ""))


def version_filter(model_version: str) -> dict[str, Any]:
    """The Data Manager filter of the tasks holding a prediction whose version contains `model_version`."""
    return {"conjunction": "and", "items": [
        {"filter": VERSION_FILTER, "operator": "contains", "type": "List", "value": [model_version]},
    ]}


def task_query(ids: Sequence[int] | None = None, filters: Mapping[str, Any] | None = None) -> str | None:
    """The `query` parameter of GET /api/tasks: some task ids and/or a filter (None: everything)."""
    query: dict[str, Any] = {}
    if ids is not None:
        query["selectedItems"] = {"all": False, "included": [int(i) for i in ids]}
    if filters:
        query["filters"] = dict(filters)
    return json.dumps(query) if query else None


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


def iter_tasks(
    api: LabelStudioApi, project: int, *, view: int | None = None, ids: Sequence[int] | None = None,
    filters: Mapping[str, Any] | None = None, fields: str = "task_only", only_annotated: bool = False,
    page_size: int = 100,
) -> Iterator[dict]:
    """Tasks of a project (or of a Data Manager view), paged, in the project's order."""
    query = task_query(ids, filters)
    page = 1
    seen = 0
    while True:
        params: dict[str, Any] = {"project": project, "page": page, "page_size": page_size, "fields": fields}
        if view is not None:
            params["view"] = view
        if query is not None:
            params["query"] = query
        if only_annotated:
            params["only_annotated"] = "true"
        try:
            body = api.request("GET", "/api/tasks", params=params)
        except LabelStudioApiError as exc:
            if exc.status == 404 and page > 1:  # past the last page
                return
            raise
        items, total = page_items(body)
        yield from items
        seen += len(items)
        if not items or seen >= (seen if total is None else total):
            return
        page += 1


def model_versions(api: LabelStudioApi, project: int) -> dict[str, int]:
    """model_version -> number of predictions, for the whole project."""
    data = api.request("GET", f"/api/projects/{int(project)}/model-versions/")
    return {str(k): int(v or 0) for k, v in data.items()} if isinstance(data, dict) else {}


def tasks_holding(api: LabelStudioApi, project: int, model_version: str, ids: Sequence[int] | None = None) -> set[int]:
    """Ids (among `ids`, or of the whole project) of tasks holding a prediction of `model_version`."""
    versions = model_versions(api, project)
    if model_version not in versions:
        return set()
    filters = version_filter(model_version)
    found: set[int] = set()
    for chunk in ([ids] if ids is None else chunks(list(ids), IDS_PER_QUERY)):
        found.update(int(t["id"]) for t in iter_tasks(api, project, ids=chunk, filters=filters))
    if any(v != model_version and model_version in v for v in versions):
        # "contains" is a substring match: confirm each hit exactly
        found = {t for t in found if any(p.get("model_version") == model_version for p in api.predictions(t))}
    return found


def project_tasks(api: LabelStudioApi, project: int, *, page_size: int = 100) -> Iterator[dict]:
    """Every task of the project as `{"id", "data", "model_versions"}` (the versions it holds)."""
    for task in iter_tasks(api, project, fields="all", page_size=page_size):
        yield {"id": int(task["id"]), "data": dict(task.get("data") or {}), "model_versions": set(versions_held(task))}
