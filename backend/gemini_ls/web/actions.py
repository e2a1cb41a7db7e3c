"""The page's job actions besides cancel (docs/page.md "Actions"), through the same functions as the
CLI (jobs/start.py); the chunks go to the one RQ queue, so the workers run them.

"Start prelabel": for a project or one of its Data Manager views, first the estimate (`gemini-ls
prelabel --estimate`: countTokens on a sample, no generateContent), then, once the user has seen it,
the job with an optional cap (`--max-cost`).

"Retry failed tasks": a NEW prelabel job of exactly the failed tasks of a job that ended, selected as
`gemini-ls prelabel --tasks` would (read from Label Studio as they are now, so an image fixed since
is used; the project's current config and the server's model_version with the learned state; a
task that holds that version by now is left out, so nothing is written twice). The old job keeps its
record, its failures stay visible."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..jobs.context import make_store
from ..jobs.records import BATCH
from ..jobs.start import UsageError, cap_problem, run_estimate, select_tasks, submit_job
from ..labelstudio import LabelStudioApi, LabelStudioApiError
from ..settings import Settings


class ActionError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PrelabelRequest:
    project: int
    view: int | None
    max_cost: float | None


def parse_request(form: Any) -> PrelabelRequest:
    """From the form (or JSON) fields project, view (optional), max_cost (optional); ActionError 400."""
    def number(name: str, kind: Callable[[str], Any]) -> Any:
        raw = str(form.get(name) or "").strip()
        if not raw:
            return None
        try:
            return kind(raw)
        except ValueError:
            raise ActionError(400, f"{name}: {raw[:40]!r} is not a number") from None

    project = number("project", int)
    if project is None or project <= 0:
        raise ActionError(400, "project: a Label Studio project id is needed")
    view = number("view", int)
    max_cost = number("max_cost", float)
    if max_cost is not None and max_cost <= 0:
        raise ActionError(400, "max_cost must be a positive number of USD")
    return PrelabelRequest(project, view, max_cost)


class PrelabelActions:
    """`pipeline`: the server's (its Gemini client, Files API cache and emulator); `api`: Label Studio
    with the server's credentials (None: not configured); `emulated`: the server's model_version flag."""

    def __init__(self, settings: Settings, pipeline: Any, api: Callable[[], LabelStudioApi | None], emulated: bool) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self._api = api
        self.emulated = emulated

    def _ready(self) -> LabelStudioApi:
        if not self.settings.redis_url:
            raise ActionError(409, "starting a job from the page needs REDIS_URL (the workers run it); "
                                   "use `gemini-ls prelabel` on this machine instead")
        if self.pipeline is None or self.pipeline.gateway is None:
            raise ActionError(409, "Gemini is not configured (GEMINI_API_KEY or GEMINI_EMULATOR=embedded)")
        api = self._api()
        if api is None:
            raise ActionError(409, "no Label Studio credentials: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY")
        return api

    def _select(self, api: LabelStudioApi, req: PrelabelRequest, ids: list[int] | None = None):
        try:
            return select_tasks(api, self.settings, req.project, view=req.view, ids=ids, emulated=self.emulated)
        except UsageError as exc:
            raise ActionError(400, str(exc)) from None
        except LabelStudioApiError as exc:
            raise ActionError(502, f"Label Studio: {exc}") from None

    def estimate(self, req: PrelabelRequest) -> dict:
        api = self._ready()
        selection = self._select(api, req)
        est = run_estimate(self.settings, selection, pipeline=self.pipeline)
        return {"project": req.project, "view": req.view, "model_version": selection.version,
                "already": len(selection.holding), "text": est.describe(), **est.to_json()}

    def start(self, req: PrelabelRequest) -> dict:
        api = self._ready()
        selection = self._select(api, req)
        est = run_estimate(self.settings, selection, pipeline=self.pipeline) if req.max_cost is not None else None
        problem = cap_problem(req.max_cost, est)
        if problem:
            raise ActionError(400, problem)
        info, _queue, rq_ids = submit_job(self.settings, api, selection, make_store(self.settings), max_cost=req.max_cost,
                                         est=est, local_executor=False)
        return {"status": "ok", "job": info.id, "tasks": info.total, "chunks": len(rq_ids), "max_cost": req.max_cost}

    def retry(self, job_id: str) -> dict:
        """Re-queue `job_id`'s failed tasks as a new job; ActionError 404 (unknown job), 409 (still
        running, a Batch API job, nothing to retry, no credentials)."""
        store = make_store(self.settings)
        info = store.get(job_id)
        if info is None:
            raise ActionError(404, "no job by that id")
        if info.kind == BATCH:
            raise ActionError(409, "a Batch API job: retry its failed tasks with gemini-ls prelabel --batch (docs/batch.md)")
        if not info.finished and not info.cancelled:
            raise ActionError(409, "the job is still running: cancel it or wait for it to end")
        failed = sorted(info.failed)
        if not failed:
            raise ActionError(409, "the job has no failed task")
        api = self._ready()
        selection = self._select(api, PrelabelRequest(int(info.project), None, None), ids=failed)
        if not selection.tasks:
            raise ActionError(409, "none of the failed tasks needs predicting: Label Studio holds them with "
                                   f"{selection.version} or no longer holds them")
        new, _queue, rq_ids = submit_job(self.settings, api, selection, store, local_executor=False)
        return {"job": new.id, "retry_of": job_id, "tasks": new.total, "chunks": len(rq_ids)}
