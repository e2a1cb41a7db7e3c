"""Dispatch of the job commands (`prelabel`, `jobs`, `worker`), registered in cli.py."""

from __future__ import annotations

import argparse
import sys

import redis

from ..settings import Settings


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    from ..batch import cli as batch_cli
    from .jobcmd import run_jobs
    from .prelabel import UsageError, run_prelabel

    try:
        if args.command == "prelabel":
            return batch_cli.prelabel(args, settings) if (args.batch and not args.estimate) else run_prelabel(args, settings)
        if args.command == "jobs":
            return run_jobs(args, settings)
        from .worker import run_worker

        return run_worker(settings, burst=args.burst)
    except UsageError as exc:
        sys.stderr.write(f"gemini-ls {args.command}: {exc}\n")
        return 2
    except redis.RedisError as exc:  # the `job` profile gave up (30 s socket timeout, one retry): say so, no traceback
        sys.stderr.write(f"gemini-ls {args.command}: Redis (REDIS_URL) did not answer ({type(exc).__name__}: {exc}); "
                         "queued chunks stay on the queue for the workers once Redis is back (`gemini-ls jobs` shows them)\n")
        return 1
