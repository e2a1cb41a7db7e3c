"""Dispatch of the job commands (`prelabel`, `jobs`, `worker`), registered in cli.py."""

from __future__ import annotations

import argparse
import sys

import redis

from ..settings import Settings


def _jobs(args: argparse.Namespace, settings: Settings) -> int:
    """List and show read the jobs page's own functions (web/commands.py: the same as GET
    /api/jobs and /api/jobs/<id>); cancelling a prelabel job is the page's Cancel; cancelling a Batch
    API job or a batch by name stays with batch/cli.py (it talks to the Batch API)."""
    from ..batch import cli as batch_cli
    from ..web import commands as page
    from .prelabel import UsageError

    if not settings.redis_url:
        raise UsageError("gemini-ls jobs reads the job store in Redis: set REDIS_URL")
    words = list(args.words)
    if words and words[0] == "cancel":
        if len(words) == 2 and not batch_cli.is_batch_job(words[1:]) and page.JobSource.from_settings(settings).get_job(words[1]):
            return page.cancel_job(settings, words[1])
        return batch_cli.jobs(args, settings)
    if len(words) > 1:
        raise UsageError("usage: gemini-ls jobs [ID] | gemini-ls jobs cancel ID")
    if words and words[0].startswith("batches/"):
        return batch_cli.jobs(args, settings)
    return page.show_jobs(settings, words[0] if words else None, as_json=args.json)


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    from ..batch import cli as batch_cli
    from .prelabel import UsageError, run_prelabel

    try:
        if args.command == "prelabel":
            return batch_cli.prelabel(args, settings) if args.batch else run_prelabel(args, settings)
        if args.command == "jobs":
            return _jobs(args, settings)
        from .worker import run_worker

        return run_worker(settings, burst=args.burst)
    except UsageError as exc:
        sys.stderr.write(f"gemini-ls {args.command}: {exc}\n")
        return 2
    except redis.RedisError as exc:  # the `job` profile gave up (30 s socket timeout, one retry): say so, no traceback
        sys.stderr.write(f"gemini-ls {args.command}: Redis (REDIS_URL) did not answer ({type(exc).__name__}: {exc}); "
                         "queued chunks stay on the queue for the workers once Redis is back (`gemini-ls jobs` shows them)\n")
        return 1
