"""`gemini-ls jobs` and `gemini-ls report --from-ledger`: the page's data in a terminal. They call
the functions GET /api/jobs, /api/jobs/<id> and /api/projects/<id>/report answer with (web/data.py,
web/reports.py), so the three never disagree (docs/page.md "JSON")."""

from __future__ import annotations

import json
import sys

from ..settings import Settings
from .data import JobSource, JobView


def _line(j: JobView) -> str:
    pace = f"{j.rate_per_min:.1f}/min ETA {int(j.eta_seconds or 0)}s" if j.rate_per_min is not None else "-"
    cost = f"${j.cost_usd:.4f}" if j.cost_usd is not None else "-"
    return (f"{j.id:34} {j.kind:8} {j.project:>7} {j.state:26} {j.done:>6} {j.failed:>6} {j.skipped:>7} {j.total:>6} "
            f"{pace:>18} {cost:>9}  {j.model_version}")


def show_jobs(settings: Settings, job_id: str | None, *, as_json: bool, out=sys.stdout) -> int:
    """No id: every job (GET /api/jobs); an id: that job (GET /api/jobs/<id>) with, for a prelabel
    job, every failed task and RQ's failed chunks. 2 when the id is unknown."""
    source = JobSource.from_settings(settings)
    if job_id is None:
        jobs = source.list_jobs()
        if as_json:
            out.write(json.dumps([j.to_json() for j in jobs], indent=2) + "\n")
            return 0
        out.write(f"{'job':34} {'kind':8} {'project':>7} {'state':26} {'done':>6} {'failed':>6} {'skipped':>7} {'total':>6} "
                  f"{'rate':>18} {'cost':>9}  model_version\n")
        for j in jobs:
            out.write(_line(j) + "\n")
            for b in j.batches:  # a batch job's Batch API jobs, under its row
                out.write(f"    {b['name']}  {b['state']}  {b['model'] or '?'}  {b['requests']} request(s) {b['source']}\n")
        return 0
    job = source.get_job(job_id)
    if job is None:
        sys.stderr.write(f"gemini-ls jobs: no job {job_id!r}\n")
        return 2
    detail = job.to_json()
    if job.kind == "prelabel":
        detail.update(_prelabel_extras(source, job_id))
    if as_json:
        out.write(json.dumps(detail, indent=2) + "\n")
    else:
        for k, v in detail.items():
            out.write(f"{k}: {v}\n")
    return 0


def _prelabel_extras(source: JobSource, job_id: str) -> dict:
    """What a terminal wants beyond the JSON's first 50 failures: all of them, and RQ's failed chunks."""
    from ..jobs.queue import RQJobQueue
    from ..jobs.state import RedisJobStore

    store = RedisJobStore(source.client, source.settings.redis_prefix)
    info = store.get(job_id)
    if info is None:
        return {}
    chunks = RQJobQueue(source.settings, source.client).failed_chunks(job_id, store.rq_ids(job_id))
    return {"failed_tasks": {str(k): v for k, v in sorted(info.failed.items())},
            "failed_chunks": [{"rq_job": rid, "reason": why.strip().splitlines()[-1][:300] if why else ""} for rid, why in chunks]}


def show_project_report(settings: Settings, project: int, out=sys.stdout) -> int:
    """`gemini-ls report --project N --from-ledger`: GET /api/projects/<N>/report's body."""
    from .. import redisconn
    from ..review import scorecards
    from ..review.ledger import RedisLedger
    from .reports import project_report

    if not settings.redis_url:
        sys.stderr.write("gemini-ls report --from-ledger reads the review ledger in Redis: set REDIS_URL\n")
        return 2
    client = redisconn.client(settings.redis_url, redisconn.JOB)
    body = project_report(RedisLedger(client, settings.redis_prefix), project,
                          lambda ps: scorecards.load_many(client, settings.redis_prefix, ps))
    if body is None:
        sys.stderr.write(f"gemini-ls report: the review ledger holds nothing of project {project}\n")
        return 1
    out.write(json.dumps(body, indent=2) + "\n")
    return 0
