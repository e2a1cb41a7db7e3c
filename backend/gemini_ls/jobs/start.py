"""Making a pre-labelling job, shared by `gemini-ls prelabel` and the page's "Start prelabel"
(web/actions.py): which tasks (a project, a Data Manager view, ids; those already holding the
version left out), their estimate (`--estimate`), and the job on the queue with its cap."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..labelconfig import LabelConfigError, ProjectSpec, parse_label_config
from ..labelstudio import LabelStudioApi, LabelStudioApiError
from ..modelversion import model_version_for
from ..review.learning import learned_state
from ..settings import Settings
from .context import make_budget, make_store
from .estimate import Estimate
from .records import JobInfo, JobStore, new_job_id

if TYPE_CHECKING:
    from ..pipeline import Pipeline


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class Selection:
    project: int
    label_config: str
    spec: ProjectSpec
    version: str
    tasks: tuple[dict, ...]  # to predict
    holding: frozenset[int]  # already hold the version (skipped, or redone with force)


def iter_tasks(api: LabelStudioApi, project: int, view: int | None, ids: Sequence[int] | None) -> Iterable[dict]:
    """The project's tasks (all, a view's, or these ids), paged, as a job's chunks carry them."""
    for task in api.iter_tasks(project, view=view, ids=ids):
        yield {"id": int(task["id"]), "data": dict(task.get("data") or {}), "project": project}


def select_tasks(api: LabelStudioApi, settings: Settings, project: int, *, view: int | None = None,
                 ids: Sequence[int] | None = None, limit: int | None = None, force: bool = False,
                 emulated: bool | None = None) -> Selection:
    """`emulated`: whether the built-in emulator answers (a server's own; default: as `settings` say)."""
    try:
        config = api.project(project).get("label_config") or ""
        parsed = parse_label_config(config, settings.defaults)
    except LabelStudioApiError as exc:
        raise UsageError(f"cannot read project {project}: {exc}") from None
    except LabelConfigError as exc:
        raise UsageError(f"project {project}'s label config: {exc}") from None
    # The server's own effective spec and derivation, with what the review loop learned for this project (when on).
    spec = learned_state(settings, project).applied(parsed)
    version = model_version_for(settings, spec, emulated=settings.uses_emulator if emulated is None else emulated)
    tasks: list[dict] = []
    for task in iter_tasks(api, project, view, ids):
        tasks.append(task)
        if limit is not None and len(tasks) >= limit and not force:
            break
    holding = api.tasks_holding(project, version, [t["id"] for t in tasks]) if tasks else set()
    if not force:
        tasks = [t for t in tasks if t["id"] not in holding]
    if limit is not None:
        tasks = tasks[:limit]
    return Selection(project, config, spec, version, tuple(tasks), frozenset(holding))


def run_estimate(settings: Settings, selection: Selection, progress: Callable[[int, int], None] | None = None,
                 pipeline: Pipeline | None = None) -> Estimate:
    """countTokens on a sample (estimate_io.py), with `pipeline` (a server's) or one of its own, closed afterwards."""
    from ..pipeline import build_pipeline
    from .estimate_io import estimate_job, history_rates

    own = pipeline is None
    used = build_pipeline(settings) if pipeline is None else pipeline
    try:
        rates = history_rates(make_store(settings), make_budget(settings), selection.version)
        return estimate_job(used, selection.spec, selection.version, selection.tasks, rates, progress=progress)
    finally:
        if own:
            used.close()


def cap_problem(max_cost: float | None, est: Estimate | None) -> str | None:
    """Why --max-cost cannot be applied (None: it can, or there is none)."""
    if max_cost is None:
        return None
    if max_cost <= 0:
        return "--max-cost must be a positive number of USD"
    if est is None or est.per_task_sync_usd is None:
        return "--max-cost needs a price for the model(s): set GEMINI_PRICES"
    return None


def submit_job(settings: Settings, api: LabelStudioApi, selection: Selection, store: JobStore, *, force: bool = False,
               max_cost: float | None = None, est: Estimate | None = None, local_executor: bool = True) -> tuple[JobInfo, Any, list[str]]:
    """The job created, its budget set, its chunks on the queue: (job, queue, queue ids).
    `local_executor`: without Redis, this process's chunk executor is built for the job's API."""
    info = JobInfo(id=new_job_id(), project=selection.project, model_version=selection.version,
                   total=len(selection.tasks), created=time.time(), ls_url=api.base_url, force=force)
    store.create(info, selection.label_config)
    per_task = est.per_task_sync_usd if est is not None else None
    if max_cost is not None or per_task:
        make_budget(settings).set_cap(info.id, max_cost, per_task or 0.0)
    if not selection.tasks:
        return info, None, []
    from .queue import LocalJobQueue, RQJobQueue, process_executor, set_process_executor

    if not settings.redis_url and local_executor:
        from .context import build_executor

        set_process_executor(build_executor(settings, store=store, api=api))
    queue: Any = RQJobQueue(settings) if settings.redis_url else LocalJobQueue(process_executor)
    size = settings.job_chunk
    tasks = list(selection.tasks)
    chunks = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    rq_ids = queue.submit(info.id, chunks)
    store.set_chunks(info.id, len(chunks), rq_ids)
    return info, queue, rq_ids
