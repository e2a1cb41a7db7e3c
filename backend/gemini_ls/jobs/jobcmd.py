"""`gemini-ls jobs [ID] | jobs cancel ID`: every job of the one job store (state.py) in one table,
whatever runs it (RQ chunks, a click's remainder, the Batch API); cancel works for every kind
(cancel.py) and releases the job's claims."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..settings import Settings
from .prelabel import UsageError
from .records import BATCH, JobCounts
from .state import RedisJobStore

USAGE = "usage: gemini-ls jobs [ID] | gemini-ls jobs cancel ID"
HEADER = (f"{'job':40} {'kind':8} {'project':>7} {'state':25} {'done':>6} {'failed':>6} {'skipped':>7} {'total':>6} "
          f"{'cost':>9}  model_version")


def _cost(settings: Settings, job: JobCounts) -> float | None:
    if job.kind != BATCH:
        return None
    from ..gemini.pricing import cost_by_model

    return cost_by_model(job.usage, settings.price_overrides, settings.batch_discount).batch_usd


def row(settings: Settings, job: JobCounts) -> str:
    cost = _cost(settings, job)
    shown = "-" if cost is None else f"${cost:.4f}"
    return (f"{job.id:40} {job.kind:8} {job.project:>7} {job.state:25} {job.done:>6} {len(job.failed):>6} "
            f"{job.elsewhere:>7} {job.total:>6} {shown:>9}  {job.model_version}")


def _store(settings: Settings) -> RedisJobStore:
    from .context import make_store

    store = make_store(settings)
    assert isinstance(store, RedisJobStore)  # REDIS_URL is set
    return store


def run_jobs(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.redis_url:
        raise UsageError("gemini-ls jobs reads the job store in Redis: set REDIS_URL")
    words = list(args.words)
    store = _store(settings)
    if not words:
        return _list(settings, store, as_json=args.json)
    if words[0] == "cancel":
        if len(words) != 2:
            raise UsageError(USAGE)
        return _cancel(settings, store, words[1])
    if len(words) != 1:
        raise UsageError(USAGE)
    return _show(settings, store, words[0], as_json=args.json)


def _list(settings: Settings, store: RedisJobStore, *, as_json: bool) -> int:
    jobs = store.overview(50)
    if as_json:
        print(json.dumps([{**j.summary(), "cost_usd": _cost(settings, j)} for j in jobs], indent=2))
        return 0
    print(HEADER)
    for job in jobs:
        print(row(settings, job))
        for record in job.batches:  # a batch job's Batch API jobs, under its row
            print(f"    {record.name}  {record.state}  {record.model or '?'}  {record.requests} request(s) {record.source}")
    return 0


def _show(settings: Settings, store: RedisJobStore, job_id: str, *, as_json: bool) -> int:
    info = store.get(job_id)
    if info is None:
        raise UsageError(f"no job {job_id!r} (`gemini-ls jobs` lists them)")
    detail: dict[str, Any] = {**info.summary(), "failed_tasks": {str(k): v for k, v in sorted(info.failed.items())}}
    if info.kind == BATCH:
        from ..gemini.pricing import cost_by_model

        detail["batches"] = [f"{b.name} {b.state} {b.model or '?'} {b.requests} request(s) {b.source}" for b in info.batches]
        detail["cost"] = cost_by_model(info.usage, settings.price_overrides, settings.batch_discount).describe()
    else:
        from .queue import RQJobQueue

        failed_chunks = RQJobQueue(settings).failed_chunks(info.id, store.rq_ids(info.id))
        detail["failed_chunks"] = [{"rq_job": rid, "reason": why.strip().splitlines()[-1][:300] if why else ""}
                                   for rid, why in failed_chunks]
    if as_json:
        print(json.dumps(detail, indent=2))
    else:
        for k, v in detail.items():
            print(f"{k}: {v}")
    return 0


def _cancel(settings: Settings, store: RedisJobStore, ident: str) -> int:
    from .cancel import batches_api, cancel

    if ident.startswith("batches/"):  # one Batch API job by its name (made outside, or of a lost record)
        batches_api(settings).cancel(name=ident)
        sys.stderr.write(f"cancelled {ident}\n")
        return 0
    report = cancel(settings, store, ident)
    if report is None:
        sys.stderr.write(f"gemini-ls jobs: {ident!r} is neither a job id (`gemini-ls jobs` lists them) "
                         "nor a Batch API job name (batches/...)\n")
        return 2
    for name in report.batches:
        sys.stderr.write(f"cancelled {name}\n")
    sys.stderr.write(f"{ident}: cancelled ({report.kind}; {report.chunks} queued chunk(s) dropped, "
                     f"{report.released} claim(s) released)"
                     + ("; `gemini-ls prelabel --batch` will not resubmit it" if report.kind == BATCH else "") + "\n")
    return 0
