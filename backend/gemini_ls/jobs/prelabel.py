"""`gemini-ls prelabel --project ID`: pre-label a whole project (`gemini-ls jobs` is jobcmd.py).

Reads the project's label config and tasks through labelstudio/ (paged; `--tasks 1,2,5-9`,
`--view ID`, `--limit N`), leaves out tasks that already hold a prediction of the current
model_version (unless `--force`, which deletes that prediction first so each task still ends
with exactly one), makes a job, enqueues its chunks (RQ with REDIS_URL, else this process's pool)
and shows a progress bar (tqdm: done / failed / rate / ETA). Exit code 1 when any task failed,
with a summary by reason; `--no-wait` prints the job id at once; `--retry-failed JOB` re-queues
exactly the chunks RQ keeps in its failed registry for that job (their written tasks are skipped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..labelstudio import LabelStudioApi, LabelStudioAuth
from ..settings import Settings
from .claims import scope_of
from .context import make_budget, make_claims, make_store
from .records import JobInfo, JobStore
from .start import UsageError, cap_problem, iter_tasks, run_estimate, select_tasks, submit_job


def parse_task_ids(spec: str) -> list[int]:
    """"1,2,5-9" -> [1, 2, 5, 6, 7, 8, 9]."""
    out: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise UsageError(f"--tasks: range {part!r} runs backwards")
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise UsageError(f"--tasks: {part!r} is not a task id or a range like 5-9") from None
    return list(dict.fromkeys(out))


def add_arguments(sub: Any) -> None:
    pre = sub.add_parser("prelabel", help="pre-label a Label Studio project (jobs on RQ with REDIS_URL)")
    pre.add_argument("--project", type=int, help="Label Studio project id")
    pre.add_argument("--tasks", help="only these task ids, e.g. 1,2,5-9")
    pre.add_argument("--view", type=int, help="only the tasks of this Data Manager view (tab)")
    pre.add_argument("--limit", type=int, help="at most N tasks")
    pre.add_argument("--force", action="store_true", help="predict tasks that already hold the current model_version again")
    pre.add_argument("--no-wait", action="store_true", help="print the job id and return (needs REDIS_URL)")
    pre.add_argument("--retry-failed", metavar="JOB", help="re-queue the failed tasks of JOB")
    pre.add_argument("--url", help="Label Studio URL (default $LABEL_STUDIO_URL)")
    pre.add_argument("--api-key", help="Label Studio API key (default $LABEL_STUDIO_API_KEY)")
    pre.add_argument("--quiet", action="store_true", help="no progress bar")
    pre.add_argument("--estimate", action="store_true",
                     help="print requests, tokens and dollars (countTokens on <= 20 sampled tasks) and stop: no job, no prediction")
    pre.add_argument("--max-cost", type=float, metavar="USD",
                     help="stop before a chunk would take the job's spend past USD (rerun with a higher cap to go on)")
    pre.add_argument("--json", action="store_true", help="--estimate: machine-readable output")
    from ..batch.cli import add_batch_options

    add_batch_options(pre)
    jobs = sub.add_parser("jobs", help="every job as the jobs page shows it: list, show ID, cancel ID")
    jobs.add_argument("words", nargs="*", metavar="[cancel] ID",
                      help="nothing: list (GET /api/jobs); ID: one job in detail (GET /api/jobs/ID); "
                      "cancel ID: cancel a job (a prelabel job, batch:... or batches/...)")
    jobs.add_argument("--json", action="store_true", help="machine-readable output")


def _api(args: argparse.Namespace, settings: Settings) -> LabelStudioApi:
    url = (args.url or settings.label_studio_url or "").rstrip("/")
    key = args.api_key or settings.label_studio_api_key
    if not url or not key:
        raise UsageError("Label Studio URL and API key are needed: --url/--api-key or LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY")
    try:
        auth = LabelStudioAuth(url, key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return LabelStudioApi(auth, timeout=settings.writeback_timeout)


def _queue(settings: Settings, executor_settings: Settings):
    from .queue import LocalJobQueue, RQJobQueue, process_executor

    if settings.redis_url:
        return RQJobQueue(settings)
    return LocalJobQueue(process_executor)


def _terminal(queue: Any, rq_ids: Sequence[str]) -> bool:
    if queue.kind != "rq":
        return all(f.done() for rid, (_, _, f) in list(queue._futures.items()) if rid in set(rq_ids))
    from rq.job import Job

    jobs = Job.fetch_many(list(rq_ids), connection=queue.client)
    for job in jobs:
        if job is None:
            continue
        status = job.get_status(refresh=False)
        if status is None or status.value not in ("finished", "failed", "canceled", "stopped"):
            return False
    return True


def wait_for(store: JobStore, queue: Any, job_id: str, *, quiet: bool, poll: float = 0.5) -> JobInfo:
    from tqdm import tqdm

    info = store.get(job_id)
    assert info is not None
    bar = tqdm(total=info.total, unit="task", desc=f"job {job_id}", disable=quiet, file=sys.stderr, dynamic_ncols=True)
    shown = 0
    try:
        while True:
            info = store.get(job_id)
            assert info is not None
            progressed = len(info.done | set(info.elsewhere)) + len(info.failed)
            bar.update(max(0, progressed - shown))
            shown = max(shown, progressed)
            bar.set_postfix(done=len(info.done), failed=len(info.failed), refresh=False)
            if len(info.done | set(info.elsewhere)) >= info.total or _terminal(queue, store.rq_ids(job_id)):
                return store.get(job_id) or info
            time.sleep(poll)
    finally:
        bar.close()


def _report(info: JobInfo, out=sys.stderr) -> int:
    s = info.summary()
    out.write(f"job {info.id}: {s['done']} done, {s['failed']} failed, {s['elsewhere']} written by another holder, "
              f"of {info.total} ({info.model_version})\n")
    for reason, n in sorted(s["failed_by_reason"].items(), key=lambda kv: -kv[1]):
        out.write(f"  failed: {n} x {reason}\n")
    for tid, why in sorted(info.failed.items())[:20]:
        out.write(f"  task {tid}: {why[:200]}\n")
    if info.failed:
        out.write(f"re-queue them with: gemini-ls prelabel --retry-failed {info.id}\n")
    return 1 if info.failed else 0


def run_prelabel(args: argparse.Namespace, settings: Settings) -> int:
    store = make_store(settings)
    if args.retry_failed:
        if not settings.redis_url:
            raise UsageError("--retry-failed needs REDIS_URL (jobs of the in-process pool end with their command)")
        info = store.get(args.retry_failed)
        if info is None:
            raise UsageError(f"no job {args.retry_failed!r}")
        queue = _queue(settings, settings)
        failed_ids = sorted(info.failed)
        if not failed_ids:
            sys.stderr.write(f"job {info.id}: no failed tasks\n")
            return 0
        # the tasks as Label Studio has them NOW (an image fixed since is used), exactly the failed ones
        again = list(iter_tasks(_api(args, settings), info.project, None, failed_ids))
        n = queue.drop_failed(info.id, store.rq_ids(info.id))
        size = settings.job_chunk
        rq_ids = queue.submit(info.id, [again[i : i + size] for i in range(0, len(again), size)])
        store.set_chunks(info.id, info.chunks + len(rq_ids), rq_ids)
        sys.stderr.write(f"job {info.id}: re-queued {len(again)} failed tasks ({n} failed chunk(s) dropped from RQ's failed registry)\n")
        if args.no_wait:
            print(info.id)
            return 0
        return _report(wait_for(store, queue, info.id, quiet=args.quiet))
    if args.project is None:
        raise UsageError("--project ID is required (or --retry-failed JOB)")
    if args.no_wait and not settings.redis_url and not args.estimate:
        raise UsageError("--no-wait needs REDIS_URL: without it the job runs in this process")
    api = _api(args, settings)
    wanted = parse_task_ids(args.tasks) if args.tasks else None
    selection = select_tasks(api, settings, args.project, view=args.view, ids=wanted, limit=args.limit, force=args.force)
    est = None
    if args.estimate or args.max_cost is not None:
        est = run_estimate(settings, selection)
        if args.estimate:  # nothing else: no job, no generateContent call, no prediction deleted
            print(json.dumps(est.to_json(), indent=2) if getattr(args, "json", False) else est.describe())
            return 0
        problem = cap_problem(args.max_cost, est)
        if problem:
            raise UsageError(problem)
        sys.stderr.write(est.describe() + f"; capped at ${args.max_cost:.4f}\n")
    if args.force:
        _forget(api, settings, args.project, selection.version, selection.holding)
    sys.stderr.write(f"project {args.project}: {len(selection.tasks)} tasks to predict as {selection.version}"
                     + (f" ({len(selection.holding)} already hold it, skipped)" if selection.holding and not args.force else "") + "\n")
    info, queue, rq_ids = submit_job(settings, api, selection, store, force=bool(args.force), max_cost=args.max_cost, est=est)
    if queue is None:
        print(info.id)
        return 0
    sys.stderr.write(f"job {info.id}: {len(rq_ids)} chunks on the {'RQ queue' if queue.kind == 'rq' else 'in-process pool'}\n")
    if args.no_wait:
        print(info.id)
        return 0
    final = wait_for(store, queue, info.id, quiet=args.quiet)
    print(info.id)
    code = _report(final)
    stopped = make_budget(settings).state(info.id).stopped
    if stopped:
        sys.stderr.write(f"job {info.id} stopped: {stopped}\n")
        return 1
    return code


def _forget(api: LabelStudioApi, settings: Settings, project: int, version: str, task_ids: Iterable[int]) -> None:
    """--force: delete the tasks' predictions of this version and their claims, so the new one is the only one."""
    ids = list(task_ids)
    for tid in ids:
        for pred in api.predictions(tid):
            if pred.get("model_version") == version:
                api.delete_prediction(int(pred["id"]))
    make_claims(settings).forget(scope_of(project, version), ids)
