"""`gemini-ls serve | predict | preview | emulator | report | evaluate | prelabel | jobs | worker`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .logsetup import configure_logging

if TYPE_CHECKING:
    from .labelconfig import ProjectSpec
from .review import cli as review_cli
from .settings import NO_GEMINI_MESSAGE, Settings, SettingsError, log_gemini_choice

# Commands that call Gemini: with no key and no GEMINI_EMULATOR=embedded they refuse to start (exit 2)
GEMINI_COMMANDS = ("predict", "preview", "prelabel", "worker", "evaluate")


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    # The same server stack as the Docker image: gunicorn with WORKERS x THREADS.
    import os
    import tempfile

    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Must be set before prometheus_client is imported, so /metrics adds every worker up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gemini-ls-metrics-")

    from gunicorn.app.base import BaseApplication

    from . import gunicorn_conf
    from .server import create_app

    host = args.host or settings.host
    port = args.port or settings.port

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", settings.workers)
            self.cfg.set("threads", settings.threads)
            self.cfg.set("worker_class", "gthread")
            # Label Studio waits 100 s for /predict; a worker must outlive PREDICT_TIMEOUT.
            self.cfg.set("timeout", gunicorn_conf.timeout)
            for name in ("on_starting", "child_exit", "control_socket_disable", "worker_tmp_dir"):
                if hasattr(gunicorn_conf, name) and name in self.cfg.settings:
                    self.cfg.set(name, getattr(gunicorn_conf, name))
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("accesslog", "-" if settings.log_level == "DEBUG" else None)

        def load(self):
            return create_app(settings)

    from .jobs.embedded import start_embedded_worker

    start_embedded_worker(settings, disabled=args.no_worker)
    _App().run()
    return 0


def _read_image(path: str) -> bytes:
    from .images.errors import ImageError

    try:
        return Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise ImageError("not_found", f"no such file: {path}") from None
    except OSError as exc:
        raise ImageError("connection", f"cannot read {path}: {exc.strerror or exc}") from None


def _run_local(images: Sequence[str], config_path: str, settings: Settings, progress: bool) -> tuple[ProjectSpec, list[dict], str]:
    """Predict local image files with the full pipeline; returns (spec, results, model_version)."""
    from tqdm import tqdm

    from .labelconfig import parse_label_config
    from .pipeline import build_pipeline
    from .plan import plan_requests, request_budget_problem

    spec = parse_label_config(Path(config_path).read_text(), settings.defaults)
    if len(spec.images) != 1:
        raise SystemExit("predict/preview take configs with exactly one <Image> (one file per task)")
    problem = request_budget_problem(plan_requests(spec), settings.max_requests_per_task)
    if problem is not None:
        raise SystemExit(f"gemini-ls: {config_path}: {problem}")
    pipeline = build_pipeline(settings)
    key = spec.images[0].value_key
    tasks: list[dict[str, Any]] = [{"id": i + 1, "data": {key: str(p)}} for i, p in enumerate(images)]
    version = pipeline.model_version(spec)
    results: list[dict] = []
    # Files are read from disk here (the HTTP fetcher refuses file paths on purpose).
    chunk = max(1, settings.concurrency)
    # Progress on stderr so stdout stays pure JSON; "n/total images" as the count.
    bar = tqdm(total=len(tasks), desc="predict", disable=not progress, file=sys.stderr, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} images [{elapsed}<{remaining}]")
    with bar:
        for i in range(0, len(tasks), chunk):
            batch = tasks[i : i + chunk]
            outcomes = pipeline.runner.run(
                batch, spec, version, lambda ref, _tid: _read_image(ref),
                deadline=time.monotonic() + settings.predict_timeout,
            )
            for task, outcome in zip(batch, outcomes):
                entry = outcome.to_response(version)
                entry["image"] = task["data"][key]
                results.append(entry)
            bar.update(len(batch))
    pipeline.close()
    return spec, results, version


def _predict(args: argparse.Namespace, settings: Settings) -> int:
    _, results, _ = _run_local(args.images, args.config, settings, progress=len(args.images) > 1 and not args.quiet)
    json.dump(results, sys.stdout, indent=None if args.compact else 2)
    sys.stdout.write("\n")
    failed = [r for r in results if "result" not in r]
    for r in failed:
        sys.stderr.write(f"FAILED {r['image']}: {r.get('error')}\n")
    return 1 if failed else 0


def _preview(args: argparse.Namespace, settings: Settings) -> int:
    from PIL import Image, ImageOps

    from .preview import draw_overlay

    spec, results, _ = _run_local([args.image], args.config, settings, progress=False)
    entry = results[0]
    if "result" not in entry:
        sys.stderr.write(f"FAILED {args.image}: {entry.get('error')}\n")
        return 1
    with Image.open(args.image) as im:
        image = ImageOps.exif_transpose(im).convert("RGB")
    draw_overlay(image, entry["result"]).save(args.output)
    sys.stderr.write(f"wrote {args.output} ({len(entry['result'])} regions)\n")
    return 0


def _emulator(argv: Sequence[str]) -> int:
    from .emulator.server import main as emulator_main

    return emulator_main(list(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gemini-ls", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the Label Studio ML backend (gunicorn; WORKERS x THREADS)")
    serve.add_argument("--host", default=None, help="bind address (default $HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (default $PORT or 9090)")
    pred = sub.add_parser("predict", help="predict local images; Label Studio JSON on stdout")
    pred.add_argument("images", nargs="+")
    pred.add_argument("--config", required=True, help="Label Studio label config XML file")
    pred.add_argument("--compact", action="store_true", help="one-line JSON")
    pred.add_argument("--quiet", action="store_true", help="no progress bar")
    prev = sub.add_parser("preview", help="draw the predictions over an image")
    prev.add_argument("image")
    prev.add_argument("--config", required=True)
    prev.add_argument("-o", "--output", required=True, help="PNG file to write")
    sub.add_parser("emulator", help="run the Gemini emulator (gemini-ls emulator --help)", add_help=False)
    review_cli.add_commands(sub)
    serve.add_argument("--no-worker", action="store_true", help="with REDIS_URL: do not work the job queue (SERVE_WORKER=false)")
    from .jobs.prelabel import add_arguments as add_job_commands

    add_job_commands(sub)
    work = sub.add_parser("worker", help="work the job queue on REDIS_URL (run any number)")
    work.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        return _emulator(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.stderr.write(f"gemini-ls: configuration error: {exc}\n")
        return 2
    configure_logging(settings.log_level)
    if args.command in GEMINI_COMMANDS:
        if not settings.gemini_configured:
            sys.stderr.write(f"gemini-ls {args.command}: {NO_GEMINI_MESSAGE}\n")
            return 2
        log_gemini_choice(settings)
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "predict":
        return _predict(args, settings)
    if args.command in review_cli.COMMANDS:
        return review_cli.COMMANDS[args.command](args, settings)
    if args.command in ("prelabel", "jobs", "worker"):
        from .jobs.commands import run_command

        return run_command(args, settings)
    return _preview(args, settings)


if __name__ == "__main__":
    raise SystemExit(main())
