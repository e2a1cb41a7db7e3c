"""Jobs benchmark: `gemini-ls prelabel` tasks per minute with 1, 2 and 4 `gemini-ls worker`
processes at a fixed emulator latency, and one "Retrieve predictions" click over 1,000 tasks
against its ideal time. Real Label Studio 1.23.2, real Redis, the emulator; everything on loopback.

Run:  LS_VENV=/work/main/.ls-venv .venv/bin/python -m tests.benchmarks.bench_jobs [--quick] [--db sqlite|postgresql|both]
Writes tests/benchmarks/results/jobs.md (then run tests.benchmarks.assemble).

--db picks Label Studio's database: its SQLite file (the default, what `label-studio start` uses),
a throwaway PostgreSQL cluster on loopback (what docker-compose.yml runs it on), or both, one after
the other in one command, with a side-by-side table of the two.

The profile next to the table comes from the workers' own per-chunk log line (jobs/work.py):
seconds per chunk in claims, the Label Studio check, prediction and write-back, and how busy the
workers were over the wall time (the rest is the command listing tasks, queue hand-over, the tail).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from rq import Queue, Worker

from gemini_ls.emulator.server import EmulatorServer
from gemini_ls.jobs.queue import queue_name
from gemini_ls.settings import Settings
from tests.e2e.helpers import EMULATOR_KEY, CorsImageServer
from tests.e2e.jobs_helpers import gemini_ls, url_project, wait_until
from tests.e2e.test_jobs_prelabel import job_env, run_cli
from tests.fixtures.labelstudio import start_label_studio
from tests.fixtures.postgres import LocalPostgres, server_bin_dir
from tests.fixtures.redis import LocalRedis

OUT = Path(__file__).parent / "results" / "jobs.md"
LATENCY = 1.5  # seconds per Gemini request: inside the 1-3 s a real generateContent on an image takes
CONCURRENCY = 4  # per worker
CHUNK = 16  # JOB_CHUNK's default
CHUNK_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*chunk of (\d+) tasks in ([\d.]+) s \(([^)]*)\)", re.M)


def chunk_profile(logs: list[str]) -> dict:
    """Mean seconds per chunk phase, the total chunk seconds and the job's span (first chunk's
    start to last chunk's end, the workers' own clocks: the command's start-up left out)."""
    from datetime import datetime

    phases: dict[str, list[float]] = {}
    total = 0.0
    starts: list[float] = []
    ends: list[float] = []
    for text in logs:
        for m in CHUNK_LINE.finditer(text):
            end = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            seconds = float(m.group(3))
            starts.append(end - seconds)
            ends.append(end)
            total += seconds
            phases.setdefault("chunk", []).append(seconds)
            for part in m.group(4).split(", "):
                name, _, secs = part.partition(" ")
                phases.setdefault(name, []).append(float(secs))
    return {"mean": {k: statistics.mean(v) for k, v in phases.items()}, "chunks": len(phases.get("chunk", [])), "busy": total,
            "span": max(ends) - min(starts) if ends else 0.0, "first": min(starts, default=0.0), "last": max(ends, default=0.0)}


def workers_run(ls, images, redis_url: str, n_workers: int, n_tasks: int) -> dict:
    emu = EmulatorServer("127.0.0.1", 0, latency=LATENCY, api_keys={EMULATOR_KEY}).start()
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    pid, _ = url_project(ls, images, None, f"bench workers {n_workers}", n_tasks)
    env = job_env(emu, ls, redis_url, prefix, GEMINI_CONCURRENCY=str(CONCURRENCY), JOB_CHUNK=str(CHUNK))
    workers = [gemini_ls(f"bench-worker-{n_workers}-{i}", ["worker"], env) for i in range(n_workers)]
    try:
        # every worker registered on the queue before the clock starts: on 2 shared cores four
        # workers importing their libraries take far longer than a fixed sleep, and would compete
        # with the command's own start-up (a cost of starting workers, not of working with them)
        client = redis.Redis.from_url(redis_url)
        queue = Queue(queue_name(Settings.from_env({"REDIS_PREFIX": prefix})), connection=client)
        wait_until(lambda: len(Worker.all(queue=queue)) >= n_workers, timeout=120, what=f"{n_workers} workers up")
        time.sleep(1)
        started = time.monotonic()
        started_at = time.time()
        out = run_cli(["prelabel", "--project", str(pid), "--quiet"], env, timeout=1200)
        wall = time.monotonic() - started
        ended_at = time.time()
        assert out.returncode == 0, out.stderr
    finally:
        for w in workers:
            w.stop()
        emu.stop()
    ideal = n_tasks / (n_workers * CONCURRENCY) * LATENCY
    profile = chunk_profile([w.log_text() for w in workers])
    span = profile["span"] or wall
    # the command's own share: its start to the first chunk's start, the last chunk's end to its exit
    before, after = profile["first"] - started_at, ended_at - profile["last"]
    return {"workers": n_workers, "tasks": n_tasks, "wall": wall, "per_min": n_tasks / wall * 60, "ideal": ideal,
            "before": before, "after": after,
            "profile": profile, "span": span, "job_per_min": n_tasks / span * 60, "busy": profile["busy"] / (n_workers * span)}


def one_click(ls, images, redis_url: str, n_tasks: int) -> dict:
    """What a user sees (bench_click.py, issue #22 item 11): Label Studio's own Retrieve predictions
    action to the last task's prediction stored, with REDIS_URL (the remainder on the RQ queue)."""
    from tests.benchmarks.bench_click import click

    r = click(ls, images, redis_url, n_tasks, 90.0 * n_tasks / 1000, {})
    return {"tasks": n_tasks, "answered": r["answered"] or 0.0, "total": r["total"], "ideal": r["ideal"],
            "written": r["written"], "timeout": 90.0 * n_tasks / 1000}


DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
PROFILE_PHASES = ("claim", "check", "predict", "write")


def run_on(db: str, images, redis_url: str, n_workers_tasks: int, n_click: int) -> dict:
    """The whole benchmark against one Label Studio: on its SQLite file (the template), or on a
    throwaway PostgreSQL cluster of its own (tests/fixtures/postgres.py), migrated on start."""
    pg = LocalPostgres().start() if db == "postgresql" else None
    try:
        ls = start_label_studio(True, f"bench-jobs-{db}", pg.label_studio_env() if pg else None)
        try:
            rows = [workers_run(ls, images, redis_url, w, n_workers_tasks) for w in (1, 2, 4)]
            click = one_click(ls, images, redis_url, n_click)
            if pg:  # the rows are really there, not in a SQLite file beside it
                stored = int(pg.query("SELECT count(*) FROM prediction")[0][0])
                assert stored >= 3 * n_workers_tasks + n_click, stored
                assert not list(ls.data_dir.glob("*.sqlite3")), list(ls.data_dir.iterdir())
        finally:
            ls.stop()
    finally:
        if pg:
            pg.stop()
    return {"db": db, "rows": rows, "click": click, "version": _server_version(db)}


def _server_version(db: str) -> str:
    if db == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (Python's)"
    out = subprocess.run([str(server_bin_dir() / "postgres"), "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().replace("postgres (PostgreSQL)", "PostgreSQL") + ", Debian's package, default settings"


def _phases(r: dict) -> str:
    m = r["profile"]["mean"]
    return f"{m.get('chunk', 0.0):.2f} ({' / '.join(f'{m.get(k, 0.0):.2f}' for k in PROFILE_PHASES)})"


def workers_table(rows: list[dict]) -> list[str]:
    lines = [
        "| workers | job (s) | job tasks / min | job vs 1 worker (ratio to linear) | command (s) | command tasks / min | "
        "command vs 1 worker (ratio) | command before / after the job (s) | ideal (s) | workers busy in job | "
        "chunk s (claim / check / predict / write) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    base, job_base = rows[0]["per_min"], rows[0]["job_per_min"]
    for r in rows:
        n = r["workers"]
        lines.append(f"| {n} | {r['span']:.1f} | {r['job_per_min']:.0f} | {r['job_per_min'] / job_base:.2f}x "
                     f"({r['job_per_min'] / job_base / n:.2f}) | {r['wall']:.1f} | {r['per_min']:.0f} | "
                     f"{r['per_min'] / base:.2f}x ({r['per_min'] / base / n:.2f}) | {r['before']:.1f} / {r['after']:.1f} | "
                     f"{r['ideal']:.1f} | {100 * r['busy']:.0f} % | {_phases(r)} |")
    return lines


def side_by_side(results: list[dict]) -> list[str]:
    """Job throughput and Label Studio's share of a chunk, one column pair per database."""
    names = [DATABASES[res["db"]] for res in results]
    lines = ["| workers | " + " | ".join(f"{n}: job tasks / min (ratio to linear)" for n in names) + " | "
             + " | ".join(f"{n}: chunk s (claim / check / predict / write)" for n in names) + " |",
             "|---:|" + "---:|" * len(names) + "---|" * len(names)]
    for i, n_workers in enumerate(r["workers"] for r in results[0]["rows"]):
        cells = []
        for res in results:
            r, base = res["rows"][i], res["rows"][0]["job_per_min"]
            cells.append(f"{r['job_per_min']:.0f} ({r['job_per_min'] / base / n_workers:.2f})")
        lines.append(f"| {n_workers} | " + " | ".join(cells) + " | " + " | ".join(_phases(res["rows"][i]) for res in results) + " |")
    clicks = [f"{DATABASES[res['db']]} {res['click']['total']:.1f} s = {res['click']['total'] / res['click']['ideal']:.3f}x"
              for res in results]
    lines += ["", f"One click over {results[0]['click']['tasks']} tasks, every prediction stored after: " + "; ".join(clicks) + "."]
    return lines


def click_line(click: dict) -> str:
    return (f"One \"Retrieve predictions\" over {click['tasks']} tasks, emulator latency 1.0 s, GEMINI_CONCURRENCY=8, "
            f"PREDICT_TIMEOUT={click['timeout']:g}, REDIS_URL (the remainder on the RQ queue, serve's embedded worker): "
            "Label Studio's action returned after "
            f"{click['answered']:.1f} s; every task held its prediction after **{click['total']:.1f} s = "
            f"{click['total'] / click['ideal']:.3f}x the ideal {click['ideal']:.0f} s** ({click['written']:.0f} written back "
            "through the API, the rest stored by Label Studio from the /predict answer).")


def render(results: list[dict], n_workers_tasks: int, load: tuple[str, str], command: str) -> list[str]:
    lines = [
        "# Jobs: workers scaling and the one-click finisher",
        "",
        f"`gemini-ls prelabel` over {n_workers_tasks} tasks (rectangles-only config, one Gemini call per task), **emulator latency "
        f"{LATENCY} s per request** (a real image generateContent takes 1-3 s), GEMINI_CONCURRENCY={CONCURRENCY} per worker, "
        f"JOB_CHUNK={CHUNK}; wall time from the command's start to its exit (listing tasks, the job, every write-back included).",
        "",
        "Two clocks: **job** = the workers' own span, from the first chunk's start to the last chunk's end (the worker "
        "scaling); **command** = from the command's start to its exit, which adds a fixed cost independent of the worker "
        "count (Python start-up and imports, listing the project's tasks, the last progress poll, the exit).",
        "",
    ]
    if len(results) > 1:
        lines += ["Label Studio's database, side by side (same command, one after the other; full tables below):", "",
                  *side_by_side(results), ""]
    for res in results:
        if len(results) > 1:
            lines += [f"### Label Studio on {DATABASES[res['db']]}", ""]
        lines += [f"Label Studio's database: {res['version']}.", "", *workers_table(res["rows"]), "", click_line(res["click"]), ""]
    lines += [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, /proc/loadavg before the run `{load[0]}`, after it "
        f"`{load[1]}` (shared with other work: ratios, not absolute numbers, are the point).",
        "",
        f"Command: `{command}`",
    ]
    return lines


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer tasks (a smoke run)")
    ap.add_argument("--db", choices=(*DATABASES, "both"), default="sqlite",
                    help="Label Studio's database: its SQLite file (default), a throwaway PostgreSQL cluster, or both one after the other")
    args = ap.parse_args(argv)
    n_workers_tasks = 64 if args.quick else 256  # a whole number of chunks per worker at 1, 2 and 4
    n_click = 200 if args.quick else 1000
    dbs = list(DATABASES) if args.db == "both" else [args.db]
    load_before = _loadavg()
    redis_server = LocalRedis().start()
    images = CorsImageServer()
    try:
        results = [run_on(db, images, redis_server.url, n_workers_tasks, n_click) for db in dbs]
    finally:
        images.stop()
        redis_server.close()
    command = "LS_VENV=/work/main/.ls-venv .venv/bin/python -m tests.benchmarks.bench_jobs" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    lines = render(results, n_workers_tasks, (load_before, _loadavg()), command)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
