"""`gemini-ls report` and `gemini-ls evaluate` (registered in cli.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..settings import Settings


def label_studio_client(args: argparse.Namespace, settings: Settings) -> Any:
    from label_studio_sdk import LabelStudio

    url = args.url or settings.label_studio_url
    key = args.api_key or settings.label_studio_api_key
    if not url or not key:
        raise SystemExit("gemini-ls: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (or --url / --api-key)")
    return LabelStudio(base_url=url, api_key=key)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", type=int, required=True, help="Label Studio project id")
    p.add_argument("--url", default=None, help="Label Studio URL (default $LABEL_STUDIO_URL)")
    p.add_argument("--api-key", default=None, help="token or personal access token (default $LABEL_STUDIO_API_KEY)")


def add_commands(sub: Any) -> None:
    rep = sub.add_parser("report", help="per-label agreement of annotators with our predictions, from Label Studio")
    _common(rep)
    rep.add_argument("--model-version", default=None, help="only predictions of this model_version")
    rep.add_argument("--since", default=None, help="only annotations changed at or after this ISO date/time")
    rep.add_argument("--format", choices=("table", "json", "csv"), default="table")
    rep.add_argument("-o", "--output", default=None, help="also write a PNG chart here")


def report(args: argparse.Namespace, settings: Settings) -> int:
    from . import report as rp

    client = label_studio_client(args, settings)
    items = rp.reviewed_items(rp.fetch_tasks(client, args.project), rp.parse_since(args.since))
    by_version = rp.tallies(items, args.model_version)
    if args.format == "json":
        text = rp.render_json(by_version, args.project)
    elif args.format == "csv":
        text = rp.render_csv(by_version)
    else:
        text = rp.render_table(by_version)
    sys.stdout.write(text.rstrip("\n") + "\n")
    if args.output:
        rp.render_chart(by_version, args.output, f"gemini-ls review, project {args.project}")
        sys.stderr.write(f"wrote {args.output}\n")
    return 0


COMMANDS = {"report": report}
