"""Benchmark: pre-labelling through the Gemini Batch API vs synchronously; peak RSS in JSONL mode.

    .venv/bin/python -m tests.benchmarks.bench_batch                    # from the repository root
    .venv/bin/python -m tests.benchmarks.bench_batch --tasks 1000 --rss-tasks 5000 --out tests/benchmarks/results/batch.md

Set-up, all real and on loopback: Label Studio 1.23.2 (tests/fixtures/labelstudio.py), a private
redis-server, the Gemini emulator (its Batch API replays each request against its own
generateContent, so tokens are the synchronous ones), task images served over HTTP.

1. Tokens, cost and wall time per 1,000 tasks (the e2e label config: Rectangle + Brush + Polygon +
   Choices, two Gemini requests per task):
   - synchronous: the /predict SelectionRunner (GEMINI_CONCURRENCY=8, GEMINI_FILES=auto) over the same
     tasks, in this process; time to have every prediction (no Label Studio write: that is issue 13);
   - batch: `gemini-ls prelabel --project ID --batch` as a subprocess, end to end (read tasks, build
     and submit, poll, read results, write every prediction to Label Studio); the emulator's batch
     waits 0 s PENDING, so the wall time is our overhead plus the emulator's own work, not Google's
     turnaround (target 24 h, usually much less).
   Tokens are the emulator's own per-model counters (the usage metadata it reported); cost from
   gemini/pricing.py at each model's synchronous rate and at the batch rate (50 %), with the default
   routing (masks and the rest on two models: one batch each).
2. Peak RSS of `gemini-ls prelabel --batch --source file` over `--rss-tasks` tasks (RectangleLabels,
   one request per task), measured from outside the process by /usr/bin/time -v.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from gemini_ls.backend import build_backend
from gemini_ls.emulator.server import EmulatorServer
from gemini_ls.gemini.pricing import Tokens, cost_by_model
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.settings import Settings
from tests.e2e.helpers import CorsImageServer
from tests.e2e.prelabel import EMULATOR_KEY, make_batch_project, prelabel_cmd, prelabel_env
from tests.e2e.project import LABEL_CONFIG, RECT_CONFIG
from tests.fixtures.labelstudio import start_label_studio
from tests.fixtures.redis import LocalRedis


def _usage(emu: EmulatorServer) -> dict[str, Tokens]:
    """model -> tokens, from the emulator's per-model counters (the usage metadata it reported)."""
    return {model: Tokens(prompt=m["prompt"], output=m["candidates"], thoughts=m["thoughts"], requests=m["requests"])
            for model, m in emu.counters()["models"].items()}


def _sync(emu: EmulatorServer, tasks, config: str) -> float:
    settings = Settings(api_key=EMULATOR_KEY, base_url=emu.url, fetch_allowlist=("127.0.0.1",), concurrency=8)
    backend = build_backend(settings)
    spec = parse_label_config(config, settings.defaults)
    version = backend.model_version(spec)
    started = time.monotonic()
    try:
        for start in range(0, len(tasks), 200):
            chunk = list(tasks[start : start + 200])
            outcomes = backend.runner.run(chunk, spec, version, backend.fetch, deadline=time.monotonic() + 600)
            assert all(o.succeeded for o in outcomes), [o for o in outcomes if not o.succeeded][:3]
    finally:
        backend.runner.shutdown()
    return time.monotonic() - started


def _batch(env: dict[str, str], project_id: int, *args: str) -> tuple[float, int, str]:
    started = time.monotonic()
    done = subprocess.run(["/usr/bin/time", "-v", *prelabel_cmd(project_id, *args)], env=env,
                          capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"prelabel failed ({done.returncode}):\n{done.stderr[-4000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert rss, done.stderr[-2000:]
    return seconds, int(rss.group(1)), done.stderr


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rss-tasks", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    bench_started = time.monotonic()

    ls = start_label_studio(True, "bench-batch")
    redis_server = LocalRedis().start()
    images = CorsImageServer()
    emu = EmulatorServer("127.0.0.1", 0, api_keys={EMULATOR_KEY}).start()
    emu.batches.configure(pending_seconds=0.0)
    rows = []
    try:
        project = make_batch_project(ls, images, "bench batch vs sync", LABEL_CONFIG, args.tasks)
        emu.reset()
        sync_seconds = _sync(emu, project.tasks, LABEL_CONFIG)
        sync_usage = _usage(emu)
        emu.reset()
        env = prelabel_env(emu.url, ls, redis_server.url, f"bench:{uuid.uuid4().hex}:")
        batch_seconds, batch_rss, batch_log = _batch(env, project.id)
        batch_usage = _usage(emu)
        assert f"{args.tasks} of {args.tasks} task(s) written" in batch_log, batch_log[-3000:]
        source = "inline" if " inline (" in batch_log else "file"
        scale = 1000 / args.tasks
        batches = emu.counters()["batches"]["created"]
        for mode, usage, seconds, discount in (("synchronous", sync_usage, sync_seconds, 1.0),
                                               (f"batch ({batches} batches, {source})", batch_usage, batch_seconds, 0.5)):
            cost = cost_by_model(usage, discount=discount)
            tokens = cost.tokens
            per_1000 = None if cost.batch_usd is None else cost.batch_usd * scale
            rows.append((mode, tokens.requests * scale, tokens.prompt * scale, tokens.output * scale, _usd(per_1000),
                         seconds, seconds * scale))

        rss_project = make_batch_project(ls, images, "bench batch rss", RECT_CONFIG, args.rss_tasks, small=True)
        emu.reset()
        env = prelabel_env(emu.url, ls, redis_server.url, f"bench:{uuid.uuid4().hex}:")
        rss_seconds, rss_kb, rss_log = _batch(env, rss_project.id, "--source", "file")
        assert f"{args.rss_tasks} of {args.rss_tasks} task(s) written" in rss_log, rss_log[-3000:]
        rss_counters = emu.counters()
    finally:
        emu.stop()
        images.stop()
        redis_server.close()
        ls.stop()

    lines = [
        "# Batch API vs synchronous pre-labelling; peak RSS in JSONL mode",
        "",
        f"Command: `.venv/bin/python -m tests.benchmarks.bench_batch --tasks {args.tasks} --rss-tasks {args.rss_tasks}` "
        f"(from the repository root, with the project venv and LS_VENV set; took {time.monotonic() - bench_started:.0f} s)",
        "",
        f"Set-up: real Label Studio 1.23.2, real redis-server, the Gemini emulator (latency 0, batch PENDING 0 s), "
        f"{args.tasks} URL tasks of distinct synthetic scenes (400x400 to 800x600), label config of the e2e suite "
        "(Rectangle + Brush + Polygon + Choices: 2 Gemini requests per task), the default model routing (masks to "
        "gemini-2.5-flash-lite, the rest to gemini-3.6-flash: one batch per model), each model's tokens priced at its "
        "synchronous rate from gemini/pricing.py, 50 % of that in batch (output includes thinking). Synchronous = the /predict "
        "SelectionRunner in-process (GEMINI_CONCURRENCY=8), predictions computed, not written; batch = "
        "`gemini-ls prelabel --batch` end to end, including reading the tasks from and writing every prediction to "
        "Label Studio. Tokens are the emulator's usage metadata; the emulator's batch answers at once, so batch wall "
        "time is our overhead plus the emulator's work, not Google's turnaround (target 24 h).",
        "",
        "| mode | Gemini requests / 1,000 tasks | input tokens / 1,000 tasks | output tokens / 1,000 tasks "
        "| estimated cost / 1,000 tasks | wall time, all tasks (s) | wall time / 1,000 tasks (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, req, inp, out, usd, secs, secs_k in rows:
        lines.append(f"| {mode} | {req:.0f} | {inp:.0f} | {out:.0f} | {usd} | {secs:.1f} | {secs_k:.1f} |")
    lines += [
        "",
        f"Batch prelabel process peak RSS in that run: {batch_rss / 1024:.0f} MB.",
        "",
        f"**JSONL mode, {args.rss_tasks} tasks** (`--source file`, RectangleLabels, images 200x200 to 400x300): "
        f"peak RSS of the `gemini-ls prelabel --batch` process **{rss_kb / 1024:.0f} MB** "
        "(/usr/bin/time -v, Maximum resident set size; bar: < 300 MB), wall time "
        f"{rss_seconds:.0f} s, {rss_counters['batches']['requests']} requests in "
        f"{rss_counters['batches']['created']} batch(es), results file downloaded "
        f"{rss_counters['batches']['downloads']} time(s). Requests go to a JSONL file on disk as they are built and "
        "results are streamed from the downloaded file, so memory does not grow with the number of tasks.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    tempfile.tempdir = tempfile.gettempdir()
    sys.exit(main())
