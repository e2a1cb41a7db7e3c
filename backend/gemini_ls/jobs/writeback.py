"""Predictions written to Label Studio through its API, in chunks, retried, never twice.

`LabelStudioApi` is the small part of Label Studio's REST API the job layer needs (with the same
credentials as image downloads: legacy token or personal access token, see images/lsauth.py):

* `POST /api/projects/{id}/import/predictions` takes a list of `{"task", "result", "score",
  "model_version"}` and bulk-creates them (Label Studio 1.23 checks the task ids belong to the
  project and answers 201 `{"created": n}`);
* which tasks already hold a model_version: the Data Manager filter
  `predictions_model_versions contains <version>`; that filter is a substring match, so when
  another version of the project contains ours (`/api/projects/{id}/model-versions/`), each match
  is confirmed on `/api/predictions?task=`.

`PredictionWriter.write()` sends chunks; before EVERY attempt of a chunk it asks Label Studio which of
its tasks already hold the version and drops those: a POST that timed out may still have landed,
and a worker killed after writing leaves no other trace. 5xx, 429, timeouts and connection errors
are retried with full-jitter backoff; a 400 on a chunk is retried task by task, so one prediction
Label Studio refuses never costs the others. Nothing is lost silently: every task ends in
`written`, `already` or `failed` (with the reason) of the returned `WriteReport`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import requests

from ..images.lsauth import LabelStudioAuth

log = logging.getLogger("gemini_ls.jobs")

VERSION_FILTER = "filter:tasks:predictions_model_versions"


class LabelStudioApiError(Exception):
    def __init__(self, message: str, *, status: int | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


@dataclass(frozen=True)
class PredictionRecord:
    task_id: int
    result: tuple[dict, ...]
    model_version: str
    score: float | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"task": self.task_id, "result": list(self.result), "model_version": self.model_version}
        if self.score is not None:
            body["score"] = self.score
        return body


@dataclass(frozen=True)
class WriteReport:
    written: tuple[int, ...] = ()
    already: tuple[int, ...] = ()  # held the version already: left alone
    failed: Mapping[int, str] = field(default_factory=dict)  # task id -> why it could not be written

    def merge(self, other: WriteReport) -> WriteReport:
        return WriteReport(self.written + other.written, self.already + other.already, {**self.failed, **other.failed})


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


class LabelStudioApi:
    def __init__(self, auth: LabelStudioAuth, *, timeout: float = 30.0, session: requests.Session | None = None) -> None:
        self.auth = auth
        self.timeout = timeout
        self._session = session or requests.Session()

    @property
    def base_url(self) -> str:
        return self.auth.base_url

    def request(self, method: str, path: str, **kw) -> Any:
        url = self.auth.base_url + path
        for attempt in (1, 2):
            try:
                resp = self._session.request(method, url, headers=self.auth.headers(), timeout=self.timeout, allow_redirects=False, **kw)
            except requests.Timeout:
                raise LabelStudioApiError(
                    f"{method} {path}: Label Studio did not answer within {self.timeout:g} s", transient=True) from None
            except requests.RequestException as exc:
                raise LabelStudioApiError(f"{method} {path}: cannot reach Label Studio ({type(exc).__name__})", transient=True) from None
            if resp.status_code == 401 and attempt == 1 and self.auth.kind == "pat":
                self.auth.invalidate()  # the access token died early: refresh once
                continue
            break
        if resp.status_code >= 400:
            transient = resp.status_code >= 500 or resp.status_code in (408, 429)
            raise LabelStudioApiError(
                f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}", status=resp.status_code, transient=transient
            )
        return resp.json() if resp.content else None

    # -- reading ---------------------------------------------------------------------------------
    def project(self, project: int) -> dict:
        return self.request("GET", f"/api/projects/{project}")

    def model_versions(self, project: int) -> dict[str, int]:
        data = self.request("GET", f"/api/projects/{project}/model-versions/")
        return {str(k): int(v or 0) for k, v in (data or {}).items()} if isinstance(data, dict) else {}

    def iter_tasks(
        self, project: int, *, view: int | None = None, ids: Sequence[int] | None = None,
        filters: Mapping[str, Any] | None = None, page_size: int = 100,
    ) -> Iterator[dict]:
        """Tasks of a project (or of a Data Manager view), paged, in the project's order."""
        query: dict[str, Any] = {}
        if ids is not None:
            query["selectedItems"] = {"all": False, "included": list(ids)}
        if filters:
            query["filters"] = filters
        page = 1
        seen = 0
        while True:
            params: dict[str, Any] = {"project": project, "page": page, "page_size": page_size, "fields": "task_only"}
            if view is not None:
                params["view"] = view
            if query:
                params["query"] = json.dumps(query)
            try:
                body = self.request("GET", "/api/tasks", params=params)
            except LabelStudioApiError as exc:
                if exc.status == 404 and page > 1:  # past the last page
                    return
                raise
            items = body.get("tasks", []) if isinstance(body, dict) else (body or [])
            yield from items
            seen += len(items)
            total = body.get("total", seen) if isinstance(body, dict) else seen
            if not items or seen >= total:
                return
            page += 1

    def tasks_holding(self, project: int, model_version: str, ids: Sequence[int] | None = None) -> set[int]:
        """Ids (among `ids`, or of the whole project) of tasks holding a prediction of `model_version`."""
        versions = self.model_versions(project)
        if model_version not in versions:
            return set()
        filters = {"conjunction": "and", "items": [
            {"filter": VERSION_FILTER, "operator": "contains", "type": "List", "value": [model_version]},
        ]}
        found: set[int] = set()
        for chunk in ([ids] if ids is None else _chunks(list(ids), 500)):
            found.update(int(t["id"]) for t in self.iter_tasks(project, ids=chunk, filters=filters))
        if any(v != model_version and model_version in v for v in versions):
            # "contains" is a substring match: confirm each hit exactly
            found = {t for t in found if any(p.get("model_version") == model_version for p in self.predictions(t))}
        return found

    def predictions(self, task_id: int) -> list[dict]:
        return list(self.request("GET", "/api/predictions", params={"task": task_id}) or [])

    # -- writing ---------------------------------------------------------------------------------
    def import_predictions(self, project: int, items: Sequence[Mapping[str, Any]]) -> int:
        body = self.request("POST", f"/api/projects/{project}/import/predictions", json=list(items))
        return int((body or {}).get("created", len(items)))

    def delete_prediction(self, prediction_id: int) -> None:
        self.request("DELETE", f"/api/predictions/{prediction_id}")


@dataclass
class PredictionWriter:
    """Writes `PredictionRecord`s of one project; see the module docstring for the guarantees."""

    api: LabelStudioApi
    chunk: int = 100
    attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def write(self, project: int, records: Iterable[PredictionRecord], checked: Iterable[int] = ()) -> WriteReport:
        """`checked`: tasks the caller already found lacking the version in Label Studio and has held
        the claim of ever since (so nobody else can have written them): their first attempt skips
        the check (two Label Studio calls per chunk). A retry always checks (a POST that timed out
        may have landed)."""
        report = WriteReport()
        fresh = set(checked)
        for chunk in _chunks(list(records), self.chunk):
            report = report.merge(self._write_chunk(project, list(chunk), fresh))
        return report

    def _backoff(self, attempt: int) -> float:
        return max(0.0, min(1.0, self.rand())) * min(self.backoff_cap, self.backoff_base * 2.0**attempt)

    def _write_chunk(self, project: int, records: list[PredictionRecord], checked: Set[int] = frozenset()) -> WriteReport:
        pending = {r.task_id: r for r in records}
        versions = {r.model_version for r in records}
        already: list[int] = []
        written: list[int] = []
        last_error = "not attempted"
        for attempt in range(self.attempts):
            try:
                for version in versions:
                    mine = [t for t, r in pending.items() if r.model_version == version and (attempt or t not in checked)]
                    held = self.api.tasks_holding(project, version, mine) if mine else set()
                    for tid in held:
                        pending.pop(tid, None)
                        already.append(tid)
                if not pending:
                    return WriteReport((*written,), (*already,), {})
                self.api.import_predictions(project, [r.payload() for r in pending.values()])
                written.extend(pending)
                return WriteReport((*written,), (*already,), {})
            except LabelStudioApiError as exc:
                last_error = str(exc)
                if exc.status == 400 and len(pending) > 1:
                    # one prediction Label Studio refuses must not cost the others
                    sub = WriteReport()
                    for record in list(pending.values()):
                        sub = sub.merge(self._write_chunk(project, [record]))
                    return WriteReport((*written, *sub.written), (*already, *sub.already), dict(sub.failed))
                if not exc.transient:
                    break
                if attempt + 1 < self.attempts:
                    delay = self._backoff(attempt)
                    log.warning("write-back of %d predictions to project %s failed (%s); retry %d in %.1f s",
                                len(pending), project, exc, attempt + 1, delay)
                    self.sleep(delay)
        log.error("write-back to project %s gave up on %d tasks: %s", project, len(pending), last_error)
        return WriteReport((*written,), (*already,), {t: last_error for t in pending})
