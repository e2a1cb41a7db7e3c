"""`gemini-ls report` and `gemini-ls evaluate` (registered in cli.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..settings import Settings


def label_studio_client(args: argparse.Namespace, settings: Settings) -> Any:
    from ..labelstudio import LabelStudioApi, LabelStudioAuth

    url = args.url or settings.label_studio_url
    key = args.api_key or settings.label_studio_api_key
    if not url or not key:
        raise SystemExit("gemini-ls: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (or --url / --api-key)")
    try:
        return LabelStudioApi(LabelStudioAuth(url, key), timeout=settings.writeback_timeout)
    except ValueError as exc:
        raise SystemExit(f"gemini-ls: {exc}") from None


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
    rep.add_argument("--reliability", default=None, metavar="PNG",
                     help="also write the calibration's reliability diagram (before / after) here")
    rep.add_argument("--from-ledger", action="store_true",
                     help="print GET /api/projects/<id>/report's JSON: the review ledger in Redis (no Label Studio call)")
    ev = sub.add_parser("evaluate", help="run candidate settings on the project's annotated tasks (writes nothing to Label Studio)")
    _common(ev)
    ev.add_argument("--variant", action="append", required=True, metavar="KEY=VALUE[,KEY=VALUE]",
                    help="one set of overrides per column; keys: name, model, media_resolution, max_objects, "
                    "score_threshold, temperature, image_max_side, few_shot, hint.<Label>")
    ev.add_argument("--limit", type=int, default=None, help="at most this many annotated tasks")


def report(args: argparse.Namespace, settings: Settings) -> int:
    if args.from_ledger:
        from ..web.commands import show_project_report

        return show_project_report(settings, args.project)
    from ..labelstudio.annotations import annotated_tasks
    from . import report as rp
    from .reliability import calibration_line, render_reliability

    client = label_studio_client(args, settings)
    items = list(rp.reviewed_items(annotated_tasks(client, args.project), rp.parse_since(args.since)))
    summaries = rp.summaries(items, args.model_version)
    by_version = {v: s.tally for v, s in summaries.items()}
    line, triples = calibration_line(rp.sample_groups(items, args.model_version))  # Gemini's confidence vs kept
    if args.format == "json":
        text = rp.render_json(by_version, args.project)
    elif args.format == "csv":
        text = rp.render_csv(by_version)
    else:
        extra = {v: rp.suggestions(s) for v, s in summaries.items() if s.relabels}
        for v, line in few_shot_lines(settings, by_version).items():
            extra[v] = line + ("\n" + extra[v] if v in extra else "")
        text = rp.render_table(by_version, extra).rstrip("\n") + "\n\n" + line
    sys.stdout.write(text.rstrip("\n") + "\n")
    if args.output:
        rp.render_chart(by_version, args.output, f"gemini-ls review, project {args.project}")
        sys.stderr.write(f"wrote {args.output}\n")
    if args.reliability:
        render_reliability([t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples],
                           args.reliability, f"gemini-ls calibration, project {args.project}")
        sys.stderr.write(f"wrote {args.reliability}\n")
    return 0


def few_shot_lines(settings: Settings, versions: Any) -> dict[str, str]:
    """What each version's few-shot examples cost per request, from the usage record."""
    import redis

    from ..redisconn import JOB
    from .fewshot import describe_usage, make_usage, tag_of_version

    tags = {v: t for v in versions if (t := tag_of_version(v))}
    if not tags:
        return {}
    try:
        usage = make_usage(settings.redis_url, settings.redis_prefix, JOB)
        return {v: describe_usage(t, usage.get(t)) for v, t in tags.items()}
    except (redis.RedisError, OSError) as exc:  # Redis away: the table itself does not need it
        return {v: f"few-shot {t}: usage unavailable ({type(exc).__name__})" for v, t in tags.items()}


def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from ..labelstudio.annotations import annotated_tasks
    from . import evaluate as ev

    client = label_studio_client(args, settings)
    settings = settings.with_(label_studio_url=args.url or settings.label_studio_url,
                              label_studio_api_key=args.api_key or settings.label_studio_api_key)
    try:
        variants = [ev.parse_variant(text, settings, i) for i, text in enumerate(args.variant)]
    except ev.VariantError as exc:
        sys.stderr.write(f"gemini-ls evaluate: {exc}\n")
        return 2
    config = client.label_config(args.project)
    tasks = list(annotated_tasks(client, args.project))
    examples, example_tasks = ev.split_examples(tasks, variants)
    if examples:
        sys.stderr.write(f"few-shot examples: tasks {', '.join(str(t) for t in sorted(example_tasks))} "
                         "(left out of the evaluated tasks of every variant)\n")
    truth = ev.ground_truth([t for t in tasks if t["id"] not in example_tasks], args.limit)
    if not truth:
        sys.stderr.write(f"gemini-ls evaluate: project {args.project} has no annotated task\n")
        return 1
    results = []
    for v in variants:
        sys.stderr.write(f"variant {v.name}: {len(truth)} tasks ...\n")
        results.append(ev.run_variant(v, config, truth, examples=examples))
    sys.stdout.write(ev.render(results) + "\n")
    store_scorecards(settings, args.project, results)
    return 0


def store_scorecards(settings: Settings, project: int, results: Any) -> None:
    """With REDIS_URL, keep this run's scorecards for the jobs page (review/scorecards.py)."""
    if not settings.redis_url:
        return
    import time

    import redis

    from .. import redisconn
    from . import evaluate as ev
    from . import scorecards

    cards = tuple(scorecards.scorecard(r.variant.name, ev.settings_line(r.variant), r.tally, r.tasks, r.failed, r.input_tokens,
                                       r.output_tokens, r.cost_per_task(), r.latencies) for r in results)
    try:
        scorecards.save(redisconn.client(settings.redis_url, redisconn.JOB), settings.redis_prefix,
                        scorecards.Evaluation(project, time.time(), cards))
    except (redis.RedisError, OSError) as exc:  # the printed table is the result; the page just misses it
        sys.stderr.write(f"gemini-ls evaluate: scorecards not stored ({type(exc).__name__})\n")


COMMANDS = {"report": report, "evaluate": evaluate}
