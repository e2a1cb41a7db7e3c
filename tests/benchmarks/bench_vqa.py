"""VQA (issue 23 item 6): Label Studio's visual-question-answering template, four questions per task,
asked in ONE Gemini request per task (what plan.py does) vs one request per question (the same
controls, one plan each). Against the in-process emulator through the real google-genai SDK over
HTTP; the answers are checked against each scene (both ways must be right, only the cost differs).

Run:  .venv/bin/python -m tests.benchmarks.bench_vqa [--tasks 20]
Writes tests/benchmarks/results/vqa.md (then run tests.benchmarks.assemble).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

from gemini_ls.backend import build_backend
from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.plan import plan_requests
from gemini_ls.settings import Settings
from tests.e2e.templates import template_config

OUT = Path(__file__).parent / "results" / "vqa.md"
NAMES = ["red square", "blue circle", "blue circle", "green triangle"]
QUESTIONS = {"q1": ("How many blue circles are there?", "2"), "q2": ("What colour is the square?", "red"),
             "q3": ("Is there a green triangle?", "yes"), "q4": ("What shape is the red object?", "square")}


def tasks(n: int) -> list[dict]:
    out = []
    for i in range(n):
        scene = make_scene(1024, 768, names=NAMES, seed=500 + i)
        uri = "data:image/png;base64," + base64.b64encode(encode_image(scene.image, "png")).decode()
        out.append({"id": i + 1, "data": {"image": uri, **{k: q for k, (q, _) in QUESTIONS.items()}}})
    return out


def run(way: str, n: int) -> dict:
    emu = EmulatorServer(host="127.0.0.1", port=0).start()
    backend = build_backend(Settings(api_key=DEFAULT_API_KEY, base_url=emu.url, max_retries=0))
    try:
        spec = parse_label_config(template_config("computer-vision", "visual-question-answering"), backend.settings.defaults)
        (grouped,) = plan_requests(spec)
        plans = (grouped,) if way == "one request per task" else tuple(replace(grouped, controls=(c,)) for c in grouped.controls)
        predictor, right, seconds = backend.runner.predictor, 0, []
        for task in tasks(n):
            started = time.monotonic()
            outcome = predictor.predict_task(task, spec, plans, backend.fetch, deadline=time.monotonic() + 60)
            seconds.append(time.monotonic() - started)
            got = {r["to_name"]: r["value"]["text"][0] for r in outcome.result or ()}
            right += sum(got.get(k) == a for k, (_, a) in QUESTIONS.items())
        c = emu.counters()
        return {"way": way, "calls": c["requests"].get("generateContent", 0) / n, "prompt": c["tokens"]["prompt"] / n,
                "output": c["tokens"]["candidates"] / n, "right": right, "asked": n * len(QUESTIONS),
                "ms": 1000 * statistics.median(seconds)}
    finally:
        backend.runner.shutdown()
        emu.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20)
    args = ap.parse_args()
    load = os.getloadavg()
    rows = [run(way, args.tasks) for way in ("one request per task", "one request per question")]
    lines = [
        f"#### VQA template, 4 questions per task ({args.tasks} tasks of 1024x768, load {load[0]:.2f})", "",
        f"Command: `.venv/bin/python -m tests.benchmarks.bench_vqa --tasks {args.tasks}`", "",
        "| way | Gemini calls per task | prompt tokens per task | output tokens per task | right answers | median ms per task |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {r['way']} | {r['calls']:.2f} | {r['prompt']:.0f} | {r['output']:.0f} | {r['right']} / {r['asked']} | {r['ms']:.1f} |"
          for r in rows),
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
