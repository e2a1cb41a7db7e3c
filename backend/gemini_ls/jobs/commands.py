"""Dispatch of the job commands (`prelabel`, `jobs`, `worker`), registered in cli.py."""

from __future__ import annotations

import argparse
import sys

from ..settings import Settings


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    from .prelabel import UsageError, run_jobs, run_prelabel

    try:
        if args.command == "prelabel":
            return run_prelabel(args, settings)
        if args.command == "jobs":
            return run_jobs(args, settings)
        from .worker import run_worker

        return run_worker(settings, burst=args.burst)
    except UsageError as exc:
        sys.stderr.write(f"gemini-ls {args.command}: {exc}\n")
        return 2
