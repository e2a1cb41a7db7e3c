"""Benchmark: bytes sent to Gemini and latency per task for GEMINI_FILES=never|auto|always, through /predict.

    .venv/bin/python -m tests.benchmarks.bench_files            # from the repository root
    .venv/bin/python -m tests.benchmarks.bench_files --tasks 10 --latency 0.05 --out tests/benchmarks/results/files.md

Set-up, all real and on loopback: the Gemini emulator (HTTP, fixed latency per generateContent), a
private redis-server as the shared file-URI cache, an HTTP server serving the task images, and our
backend's own HTTP server (werkzeug, in-process) talking to the emulator through the google-genai SDK.

Per cell (files policy x label config), each with its own REDIS_PREFIX:

* "first run": a fresh backend, one POST /predict of N tasks, each task its own image (PNG of
  1.2-2.2 MB, noisy background, at most 1536 px so the backend passes it through unchanged);
* "re-run": a NEW backend instance (empty in-process result cache, same Redis prefix, so the file
  URIs of the first run are still known) predicting the same N tasks, e.g. a second replica, a
  restart, or Label Studio re-asking after a model-version bump.

GEMINI_CONCURRENCY=1, so tasks run one after another and wall time / N is the per-task latency.
Bytes are what the emulator received on the wire (JSON with base64 inline data, upload bodies,
Files API calls), divided by N.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gemini_ls.emulator.scenes import COLOURS, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from tests.fixtures.backend import RunningBackend, backend_test_env, start_backend
from tests.fixtures.redis import LocalRedis
from tests.fixtures.servers import ImageServer
from tests.helpers import config, keypoint_control, rect_control

CHOICES = '<Choices name="dominant" toName="image">' + "".join(
    f'<Choice value="{c.capitalize()}" hint="mostly {c}"/>' for c in COLOURS) + "</Choices>"
CONFIGS = {
    "1 control (RectangleLabels)": (config(rect_control()), 1),
    "3 controls (Rectangle + KeyPoint + Choices)": (config(rect_control(), keypoint_control(), CHOICES), 3),
}
POLICIES = ("never", "auto", "always")
# Image sizes cycle through these (all <= IMAGE_MAX_SIDE=1536: the PNG goes to Gemini byte for byte).
SHAPES = ((1200, 900), (1400, 1050), (1536, 1152), (1536, 1536))
FILES_ROUTES = ("upload", "upload_chunk", "files.get", "files.list")


def make_images(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        w, h = SHAPES[i % len(SHAPES)]
        scene = make_scene(w, h, 4 + i % 6, seed=7000 + i, background="noisy")
        buf = io.BytesIO()
        scene.image.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


@dataclass(frozen=True)
class Row:
    config: str
    policy: str
    run: str
    bytes_per_task: float
    calls_per_task: float
    uploads_per_task: float
    files_calls_per_task: float
    wall_per_task: float
    p50_task: float


def _route(counters: dict, route: str) -> int:
    return counters["requests"].get(route, 0)


def _predict(backend: RunningBackend, tasks: list[dict], label_config: str, controls: int) -> float:
    """One /predict of all tasks; checks every task got regions; returns the wall time."""
    started = time.perf_counter()
    resp = backend.post("/predict", {"tasks": tasks, "label_config": label_config}, timeout=600)
    wall = time.perf_counter() - started
    resp.raise_for_status()
    results = resp.json()["results"]
    if len(results) != len(tasks):
        raise RuntimeError(f"{len(results)} results for {len(tasks)} tasks")
    for entry in results:
        if "result" not in entry:
            raise RuntimeError(f"a task failed: {entry}")
        types = {r["type"] for r in entry["result"]}
        want = {"rectanglelabels"} if controls == 1 else {"rectanglelabels", "keypointlabels", "choices"}
        if not want <= types:
            raise RuntimeError(f"missing region types {want - types} in {entry}")
    return wall


def _task_seconds(backend: RunningBackend) -> list[float]:
    """The backend's own per-task timer (TaskOutcome.seconds) of the tasks this instance ran."""
    runner = backend.backend.runner
    with runner._lock:
        return [outcome.seconds for _, outcome in runner._done.values() if outcome.seconds is not None]


def bench(n_tasks: int, latency: float) -> tuple[list[Row], list[int]]:
    images = make_images(n_tasks)
    emu = EmulatorServer(port=0, latency=latency).start()
    store = LocalRedis().start()
    rows: list[Row] = []
    try:
        with ImageServer() as files:
            tasks = [{"id": i + 1, "data": {"image": files.add(f"/img/{i}.png", data)}} for i, data in enumerate(images)]

            def env(policy: str, prefix: str) -> dict[str, str]:
                e = backend_test_env(emu.url, DEFAULT_API_KEY)
                e.update({
                    "REDIS_URL": store.url, "REDIS_PREFIX": prefix, "GEMINI_FILES": policy,
                    "FETCH_ALLOWLIST": "127.0.0.1", "GEMINI_CONCURRENCY": "1", "GEMINI_MAX_RETRIES": "0",
                    "PREDICT_TIMEOUT": "300", "LOG_LEVEL": "WARNING",
                })
                return e

            # Warm-up (not measured): the emulator decodes each image once and caches what it "sees";
            # without this the first cell would pay the decoding.
            warm = start_backend(env("never", "bench-files:warm:"))
            try:
                _predict(warm, tasks, *CONFIGS["3 controls (Rectangle + KeyPoint + Choices)"])
            finally:
                warm.stop()

            for cfg_name, (label_config, controls) in CONFIGS.items():
                for policy in POLICIES:
                    prefix = f"bench-files:{controls}:{policy}:{time.time_ns()}:"
                    for run in ("first run", "re-run"):
                        backend = start_backend(env(policy, prefix))
                        try:
                            before = emu.counters()
                            wall = _predict(backend, tasks, label_config, controls)
                            after = emu.counters()
                            per_task = _task_seconds(backend)
                        finally:
                            backend.stop()
                        rows.append(Row(
                            cfg_name, policy, run,
                            bytes_per_task=(after["bytes_received"] - before["bytes_received"]) / n_tasks,
                            calls_per_task=(_route(after, "generateContent") - _route(before, "generateContent")) / n_tasks,
                            uploads_per_task=(after["uploads"] - before["uploads"]) / n_tasks,
                            files_calls_per_task=sum(_route(after, r) - _route(before, r) for r in FILES_ROUTES) / n_tasks,
                            wall_per_task=wall / n_tasks,
                            p50_task=statistics.median(per_task) if per_task else float("nan"),
                        ))
                        print(f"  {cfg_name} | {policy} | {run}: {rows[-1].bytes_per_task / 1e6:.3f} MB/task, "
                              f"{rows[-1].wall_per_task:.3f} s/task", file=sys.stderr)
    finally:
        store.close()
        emu.stop()
    return rows, [len(d) for d in images]


def table(rows: list[Row]) -> str:
    lines = [
        "| config | GEMINI_FILES | run | MB sent to Gemini / task | Gemini calls / task | uploads / task "
        "| Files API requests / task | latency / task: wall / N (s) | p50 task (s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.config} | {r.policy} | {r.run} | {r.bytes_per_task / 1e6:.3f} | {r.calls_per_task:.1f} "
            f"| {r.uploads_per_task:.1f} | {r.files_calls_per_task:.1f} | {r.wall_per_task:.3f} | {r.p50_task:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10, help="tasks per /predict (one distinct image each)")
    parser.add_argument("--latency", type=float, default=0.05, help="emulator latency per generateContent, seconds")
    parser.add_argument("--out", type=Path, default=Path("tests/benchmarks/results/files.md"))
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per /predict
    started = time.monotonic()
    rows, sizes = bench(args.tasks, args.latency)
    elapsed = time.monotonic() - started
    md = table(rows)
    print(md)
    command = ".venv/bin/python -m tests.benchmarks.bench_files " + " ".join(argv if argv is not None else sys.argv[1:])
    report = f"""# Files API benchmark: bytes and latency per task, through /predict

Command: `{command.strip()}` (from the repository root, with the project venv; took {elapsed:.0f} s)

Set-up: our backend's HTTP server (in-process, werkzeug) -> real google-genai SDK -> Gemini emulator
over loopback HTTP, fixed latency {args.latency:g} s per generateContent (uploads and files.get have
none); URI cache in a private redis-server, one REDIS_PREFIX per (config, policy); task images served
over loopback HTTP. One `POST /predict` of {args.tasks} tasks, each with its own PNG
(noisy-background scene, {min(sizes) / 1e6:.2f}-{max(sizes) / 1e6:.2f} MB, mean {statistics.fmean(sizes) / 1e6:.2f} MB, at most 1536 px so it is sent unchanged). GEMINI_CONCURRENCY=1: tasks run one after another, so
wall time / N is the per-task latency; "p50 task" is the median of the backend's own per-task timer
(fetch + prepare + Gemini requests, which run one after another within a task). "first run" = a
fresh backend and an empty cache; "re-run" = a new backend instance (nothing in its in-process result
cache) on the same Redis prefix, predicting the same tasks. The emulator had decoded every image
once before the first cell (warm-up, not measured).

{md}

Bytes are wire bytes the emulator received: inline images are base64 (4/3 of their size per
request), an upload costs the raw size once, a request with a file reference ~1-2 KB (prompt included). "Files API
requests" counts upload start + upload body + files.get.

Reading it: with one control, `auto` sees each image needed by a single request, so it sends it
inline on the first run and again on the re-run (nothing was uploaded, so nothing is cached): the
same bytes and latency as `never`. Only `always` uploads there: 3/4 of the inline bytes (no base64)
but two extra round trips, slightly slower per task on the first run, then a few KB per task and
faster on the re-run. With three controls every image is needed by three requests of the batch, so
`auto` uploads it once, exactly like `always`, and references it three times: a quarter of
`never`'s bytes and faster already on the first run; on the re-run the new backend instance finds
the URIs in Redis and sends only references (a few KB per task). On a real network the byte
savings weigh more than on loopback, and the upload's round trips (~2 RTT per image) are the only
cost of uploading an image used once.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
