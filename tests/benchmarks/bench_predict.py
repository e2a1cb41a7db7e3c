"""Benchmark (issue 4): one /predict of 200 tasks, emulator answering in 1.0 s, at concurrency
1, 4, 16 and 64; wall time against the ideal ceil(200/c) x 1.0 s.

Run:  .venv/bin/python -m tests.benchmarks.bench_predict [--tasks 200] [--latency 1.0] [--concurrency 1,4,16,64]
Writes the table to tests/benchmarks/results/predict.md.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import requests

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from tests.fixtures.backend import backend_test_env, start_backend
from tests.helpers import config, data_uri, rect_control

OUT = Path(__file__).parent / "results" / "predict.md"


def run(n_tasks: int, latency: float, concurrency: int, emulator: EmulatorServer) -> tuple[float, int]:
    env = backend_test_env(emulator.url, DEFAULT_API_KEY)
    env.update(GEMINI_CONCURRENCY=str(concurrency), PREDICT_TIMEOUT=str(n_tasks * latency * 2 + 30))
    backend = start_backend(env)
    try:
        tasks = []
        for i in range(n_tasks):
            scene = make_scene(320, 240, 3, seed=i)
            tasks.append({"id": i, "data": {"image": data_uri(encode_image(scene.image, "png"), "image/png")}})
        body = {"tasks": tasks, "label_config": config(rect_control()), "params": {"context": None}}
        started = time.monotonic()
        resp = requests.post(backend.url + "/predict", json=body, timeout=n_tasks * latency * 3 + 60)
        wall = time.monotonic() - started
        resp.raise_for_status()
        ok = sum(1 for e in resp.json()["results"] if "result" in e)
        return wall, ok
    finally:
        backend.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", default="1,4,16,64")
    args = parser.parse_args()
    emulator = EmulatorServer(port=0, latency=args.latency).start()
    rows = []
    try:
        for c in [int(x) for x in args.concurrency.split(",")]:
            wall, ok = run(args.tasks, args.latency, c, emulator)
            ideal = math.ceil(args.tasks / c) * args.latency
            rows.append((c, ideal, wall, wall / ideal, ok))
            print(f"concurrency {c}: {wall:.2f}s (ideal {ideal:.0f}s, ratio {wall / ideal:.3f}), {ok}/{args.tasks} ok", flush=True)
    finally:
        emulator.stop()
    command = (
        f".venv/bin/python -m tests.benchmarks.bench_predict --tasks {args.tasks} --latency {args.latency} --concurrency {args.concurrency}"
    )
    table = [
        f"### /predict throughput ({args.tasks} tasks, emulator latency {args.latency} s, one run)",
        "",
        f"Command: `{command}`",
        "",
        "| GEMINI_CONCURRENCY | ideal ceil(N/c) x latency (s) | measured (s) | ratio | tasks ok |",
        "|---:|---:|---:|---:|---:|",
    ] + [f"| {c} | {ideal:.0f} | {wall:.2f} | {ratio:.3f} | {ok}/{args.tasks} |" for c, ideal, wall, ratio, ok in rows]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
