"""One "Retrieve predictions" click as a user sees it: from Label Studio's Data Manager action to
the moment the LAST task's prediction is stored in Label Studio.

The setup of issue #22 item 11: real Label Studio 1.23.2 on SQLite, the emulator answering every
call after 1.0 s, GEMINI_CONCURRENCY=8, REDIS_URL and Label Studio credentials set (so the
remainder of the click goes to the RQ queue and serve's embedded worker), N tasks of 320x240 PNG
from a local HTTP server, then ONE POST /api/dm/actions?id=retrieve_tasks_predictions over all
tasks, exactly what the UI button posts. Label Studio's stored predictions are polled every
second (the timeline), the ratio is to the ideal N / GEMINI_CONCURRENCY * 1.0 s.

Where the time goes comes from the backend's log (its embedded worker logs there too): when the
/predict answer left (the hand-off), each RQ chunk's claim / check / predict / write seconds, and
the background writer's imports.

Run:  LS_VENV=/work/main/.ls-venv .venv/bin/python -m tests.benchmarks.bench_click [--tasks 1000] [--runs 2]
Quick: --tasks 200 (PREDICT_TIMEOUT scales with it: 90 s x N/1000, so the hand-off happens too).
Writes tests/benchmarks/results/click.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from gemini_ls.emulator.server import EmulatorServer
from tests.benchmarks.bench_jobs import CHUNK_LINE
from tests.e2e.helpers import EMULATOR_KEY, CorsImageServer, backend_env, start_backend_process
from tests.e2e.jobs_helpers import url_project, version_counts
from tests.fixtures.labelstudio import start_label_studio
from tests.fixtures.redis import LocalRedis

OUT = Path(__file__).parent / "results" / "click.md"
LATENCY = 1.0
CONCURRENCY = 8
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
HANDOFF = re.compile(STAMP + r".*one-click: job \S+ on the RQ queue finishes (\d+) tasks", re.M)
WRITEBACK = re.compile(STAMP + r".*write-back to project \d+: (\d+) written", re.M)


def _at(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _stored(ls, pid: int) -> int:
    return sum(version_counts(ls, pid).values())


def profile(log: str, clicked_at: float) -> dict:
    """Seconds from the click of the hand-off, the RQ chunks' phases and the writer's imports."""
    hand = HANDOFF.search(log)
    chunks = [(_at(m.group(1)) - clicked_at, int(m.group(2)), float(m.group(3)), m.group(4)) for m in CHUNK_LINE.finditer(log)]
    phases: dict[str, list[float]] = {}
    for *_, parts in chunks:
        for part in parts.split(", "):
            name, _, secs = part.partition(" ")
            phases.setdefault(name, []).append(float(secs))
    writes = [(_at(m.group(1)) - clicked_at, int(m.group(2))) for m in WRITEBACK.finditer(log)]
    return {
        "handoff": _at(hand.group(1)) - clicked_at if hand else None, "handed": int(hand.group(2)) if hand else 0,
        "chunks": len(chunks), "chunk_tasks": sum(c[1] for c in chunks),
        "chunk_mean": statistics.mean(c[2] for c in chunks) if chunks else 0.0,
        "phases": {k: statistics.mean(v) for k, v in phases.items()},
        "first_chunk_end": min((c[0] for c in chunks), default=None), "last_chunk_end": max((c[0] for c in chunks), default=None),
        "writer_batches": len(writes), "writer_tasks": sum(w[1] for w in writes),
    }


def click(ls, images, redis_url: str, n: int, predict_timeout: float, extra: dict[str, str]) -> dict:
    emu = EmulatorServer("127.0.0.1", 0, latency=LATENCY, api_keys={EMULATOR_KEY}).start()
    env = backend_env(emu.url, ls, PREDICT_TIMEOUT=f"{predict_timeout:g}", GEMINI_CONCURRENCY=str(CONCURRENCY),
                      REDIS_URL=redis_url, REDIS_PREFIX=f"click:{uuid.uuid4().hex[:8]}:", **extra)
    backend = start_backend_process(f"bench-click-{n}", env, timeout=120)
    try:
        pid, _ = url_project(ls, images, backend.url, f"bench click {n}", n)
        time.sleep(3)  # the embedded worker up (imports) before the clock starts
        timeline: list[tuple[float, int]] = []
        answered: dict[str, float] = {}
        clicked_at = time.time()
        started = time.monotonic()

        def post() -> None:
            ls.retrieve_predictions(pid, timeout=600)
            answered["s"] = time.monotonic() - started

        action = threading.Thread(target=post, daemon=True)
        action.start()
        while True:
            time.sleep(1.0)
            count = _stored(ls, pid)
            timeline.append((time.monotonic() - started, count))
            if count >= n or time.monotonic() - started > 900:
                break
        total = timeline[-1][0]
        action.join(timeout=600)
        written = backend.metric("gemini_ls_writeback_total", outcome="written")
        log = backend.log_text()
    finally:
        backend.stop()
        emu.stop()
    assert timeline[-1][1] == n, f"{timeline[-1][1]} of {n} stored after {total:.0f} s"
    ideal = n / CONCURRENCY * LATENCY
    return {"tasks": n, "total": total, "ideal": ideal, "ratio": total / ideal, "answered": answered.get("s"),
            "written": written, "timeline": timeline, "profile": profile(log, clicked_at)}


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def at_time(timeline: list[tuple[float, int]], seconds: float) -> int:
    return max((c for t, c in timeline if t <= seconds), default=0)


def render(rows: list[dict], command: str) -> list[str]:
    lines = ["| run | tasks | last task stored (s) | ideal (s) | ratio | LS action returned (s) | stored at the answer | "
             "hand-off (s) | RQ chunks (mean s: claim / check / predict / write) | writer imports (tasks) | loadavg before / after |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for i, r in enumerate(rows, 1):
        p = r["profile"]
        ph = p["phases"]
        chunk = (f"{p['chunks']} x {p['chunk_mean']:.2f} ({' / '.join(f'{ph.get(k, 0.0):.2f}' for k in ('claim', 'check', 'predict', 'write'))})"
                 if p["chunks"] else "none")
        hand = f"{p['handoff']:.1f} ({p['handed']} tasks)" if p["handoff"] is not None else "none"
        ans = r["answered"] or 0.0
        lines.append(f"| {i} | {r['tasks']} | {r['total']:.1f} | {r['ideal']:.0f} | **{r['ratio']:.3f}x** | {ans:.1f} | "
                     f"{at_time(r['timeline'], ans)} | {hand} | {chunk} | {p['writer_batches']} ({p['writer_tasks']}) | "
                     f"`{r['load'][0]}` / `{r['load'][1]}` |")
    lines += ["", f"Command: `{command}`"]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--predict-timeout", type=float, default=None, help="default: 90 s x tasks / 1000")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the backend (a knob to try)")
    args = ap.parse_args(argv)
    timeout = args.predict_timeout or 90.0 * args.tasks / 1000
    extra = dict(kv.split("=", 1) for kv in args.env)
    redis_server = LocalRedis().start()
    images = CorsImageServer()
    rows: list[dict] = []
    try:
        ls = start_label_studio(True, "bench-click")
        try:
            for _ in range(args.runs):
                before = _loadavg()
                r = click(ls, images, redis_server.url, args.tasks, timeout, extra)
                r["load"] = (before, _loadavg())
                rows.append(r)
                print(f"{r['tasks']} tasks: last stored after {r['total']:.1f} s = {r['ratio']:.3f}x; "
                      f"timeline every 10 s: {[at_time(r['timeline'], s) for s in range(10, int(r['total']) + 10, 10)]}; "
                      f"profile {r['profile']}", flush=True)
        finally:
            ls.stop()
    finally:
        images.stop()
        redis_server.close()
    command = "LS_VENV=/work/main/.ls-venv .venv/bin/python -m tests.benchmarks.bench_click" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    lines = render(rows, command)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
