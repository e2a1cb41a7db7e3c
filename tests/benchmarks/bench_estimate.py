"""`gemini-ls prelabel --estimate` against the job that follows it: 200 tasks of mixed image sizes
and object counts on the real Label Studio, Redis, one `gemini-ls worker` and the emulator (which
bills image tokens by size, as Gemini 2.x does, and answers with one entry per object it finds).

Steps: (1) the estimate of a fresh version (output tokens from the per-kind prior); (2) a first job
of 20 tasks (the version's history); (3) the estimate of the 200 tasks left (output from that
history); (4) the 200-task job, its tokens and dollars as billed (the job's usage record, from
every generateContent answer's usageMetadata). The estimate must be within 15 % of the measure in
input tokens, output tokens and dollars (step 3; step 1's error is shown for what a prior is worth).

Run:  LS_VENV=/work/main/.ls-venv .venv/bin/python -m tests.benchmarks.bench_estimate
(the default GEMINI_MODEL is a Gemini 3 model: it bills every image at its media resolution's fixed
budget whatever its size, so input tokens per request are the same for every task; the output
tokens vary with the objects found)
Prints the markdown table (copied into tests/benchmarks/README.md) and exits 1 when off by > 15 %.
"""

from __future__ import annotations

import json
import random
import sys
import uuid

import redis

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import EmulatorServer
from gemini_ls.gemini.pricing import Tokens, cost_by_model
from gemini_ls.jobs.budget import RedisBudget
from gemini_ls.settings import Settings
from tests.e2e.helpers import EMULATOR_KEY, CorsImageServer
from tests.e2e.jobs_helpers import exactly_one_each, gemini_ls
from tests.e2e.project import RECT_CONFIG
from tests.e2e.test_jobs_prelabel import job_env, run_cli
from tests.fixtures.labelstudio import start_label_studio
from tests.fixtures.redis import LocalRedis

HISTORY, TASKS = 20, 200
SIZES = ((320, 240), (800, 600), (1600, 1200), (640, 1280), (2400, 1200), (1024, 1024))
LIMIT = 0.15


def make_project(ls, images) -> tuple[int, list[int]]:
    pid = ls.create_project("bench estimate", RECT_CONFIG)["id"]
    tasks = []
    for i in range(HISTORY + TASKS):
        rnd = random.Random(i)
        w, h = rnd.choice(SIZES)
        names = rnd.sample(["red square", "blue circle", "green triangle", "red square", "blue circle"], rnd.randint(1, 5))
        body = encode_image(make_scene(w, h, names=names, seed=i).image, "png")
        tasks.append({"image": images.add(f"est/{i}.png", body, "image/png")})
    ls.request("POST", f"/api/projects/{pid}/import", json=tasks, expect=201)
    return pid, sorted(t["id"] for t in ls.tasks(pid))


def estimate(env, pid: int) -> dict:
    out = run_cli(["prelabel", "--project", str(pid), "--estimate", "--json"], env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def job(env, pid: int, *extra: str) -> str:
    out = run_cli(["prelabel", "--project", str(pid), "--quiet", *extra], env, timeout=900)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def off(est: float, real: float) -> str:
    return f"{100 * (est - real) / real:+.1f} %" if real else "-"


def main() -> int:
    store = LocalRedis().start()
    images = CorsImageServer()
    emu = EmulatorServer("127.0.0.1", 0, api_keys={EMULATOR_KEY}).start()
    ls = start_label_studio(True, "bench-estimate")
    worker = None
    try:
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        env = job_env(emu, ls, store.url, prefix)
        pid, ids = make_project(ls, images)
        worker = gemini_ls("bench-estimate-worker", ["worker"], env)
        prior = estimate(env, pid)  # 220 tasks, no history
        job(env, pid, "--limit", str(HISTORY))
        calls_before = emu.counters()["requests"].get("generateContent", 0)
        est = estimate(env, pid)
        assert est["tasks"] == TASKS and emu.counters()["requests"].get("generateContent", 0) == calls_before
        job_id = job(env, pid)
        exactly_one_each(ls, pid, ids)
        settings = Settings.from_env()
        usage = RedisBudget(redis.Redis.from_url(store.url), prefix).usage(job_id)
        total = sum(usage.values(), Tokens())
        cost = cost_by_model(usage, settings.price_overrides, settings.batch_discount)
        real = {"requests": total.requests, "input": total.prompt, "output": total.output + total.thoughts,
                "sync": cost.sync_usd or 0.0, "batch": cost.batch_usd or 0.0}
        scale = TASKS / prior["tasks"]
        rows = [("requests", "requests"), ("input tokens", "input_tokens"), ("output tokens", "output_tokens"),
                ("$ synchronous", "sync_usd"), ("$ batch", "batch_usd")]
        keys = ["requests", "input", "output", "sync", "batch"]
        lines = [f"| {TASKS} tasks, {', '.join(sorted(usage))} | measured (job {job_id}) | --estimate, output from "
                 f"{est['output_source']} | error | --estimate, output from the prior | error |", "|---|---:|---:|---:|---:|---:|"]
        worst = 0.0
        for (name, field), key in zip(rows, keys):
            fmt = (lambda v: f"{v:.4f}") if "$" in name else (lambda v: f"{round(v)}")
            e, p = est[field], prior[field] * scale
            if key != "requests":
                worst = max(worst, abs(e - real[key]) / real[key])
            lines.append(f"| {name} | {fmt(real[key])} | {fmt(e)} | {off(e, real[key])} | {fmt(p)} | {off(p, real[key])} |")
        print("\n".join(lines))
        print(f"\nworst error with history: {100 * worst:.1f} % (limit {100 * LIMIT:.0f} %); "
              f"countTokens calls in all: {emu.counters()['requests'].get('countTokens', 0)}")
        return 0 if worst <= LIMIT else 1
    finally:
        if worker is not None:
            worker.stop()
        ls.stop()
        emu.stop()
        images.stop()
        store.stop()


if __name__ == "__main__":
    sys.exit(main())
