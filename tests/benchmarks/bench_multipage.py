"""Benchmark (issue 23 item 4): a 10-page document, all pages in one request vs one request per page.

Label Studio's multipage-documents template (read from the installed package) with its labels given
hints the emulator can see, on documents of 10 synthetic pages each, through /predict against the
emulator (real SDK over HTTP, EMULATOR latency per call as a stand-in for Gemini's): Gemini calls,
input / output tokens and wall time per task, and how many of the pages' objects got a region on
the right page (box IoU >= 0.9), for `model_pages="together"` and `model_pages="separate"`.

Run:  .venv/bin/python -m tests.benchmarks.bench_multipage [--tasks 5 --pages 10 --latency 0.5]
Writes tests/benchmarks/results/multipage.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from gemini_ls.emulator.scenes import Scene, box_iou, encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from tests.e2e.templates import template_config
from tests.fixtures.backend import backend_test_env, start_backend
from tests.helpers import data_uri, rect_pixels

OUT = Path(__file__).parent / "results" / "multipage.md"
# the template's labels, each described to the emulator as a coloured shape
HINTS = {"Title": "red rectangle", "Date": "blue square", "Author": "green circle", "Organization": "yellow triangle",
         "Amount": "purple square"}
NAMES = list(HINTS.values())


def template(mode: str) -> str:
    config = template_config("computer-vision", "multipage-documents")
    for label, hint in HINTS.items():
        config = config.replace(f'<Label value="{label}"', f'<Label value="{label}" hint="{hint}"', 1)
    return config.replace('<RectangleLabels name="rectangles"', f'<RectangleLabels name="rectangles" model_pages="{mode}"', 1)


def documents(n_tasks: int, n_pages: int) -> list[list[tuple[Scene, str]]]:
    docs = []
    for t in range(n_tasks):
        pages = []
        for p in range(n_pages):
            names = [NAMES[(t + p + k) % len(NAMES)] for k in range(1 + (t + p) % 4)]
            scene = make_scene(600, 800, names=names, seed=900 + 31 * t + p)
            pages.append((scene, data_uri(encode_image(scene.image, "png"), "image/png")))
        docs.append(pages)
    return docs


def _run(backend, emu, docs, cfg, first_id):
    """Per task: seconds; totals: calls, prompt and output tokens, objects found on their page."""
    before = emu.counters()
    seconds, found = [], 0
    for i, pages in enumerate(docs):
        started = time.perf_counter()
        r = backend.post("/predict", {"tasks": [{"id": first_id + i, "data": {"pages": [uri for _, uri in pages]}}],
                                      "label_config": cfg})
        seconds.append(time.perf_counter() - started)
        r.raise_for_status()
        result = r.json()["results"][0]["result"]
        for page, (scene, _) in enumerate(pages):
            boxes = [rect_pixels(x) for x in result if x.get("item_index") == page]
            found += sum(any(box_iou(b, o.box) >= 0.9 for b in boxes) for o in scene.objects)
    after = emu.counters()
    calls = after["requests"].get("generateContent", 0) - before["requests"].get("generateContent", 0)
    prompt = after["tokens"]["prompt"] - before["tokens"]["prompt"]
    output = after["tokens"]["candidates"] - before["tokens"]["candidates"]
    return seconds, calls, prompt, output, found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.5, help="emulator seconds per call")
    args = parser.parse_args()
    docs = documents(args.tasks, args.pages)
    n_obj = sum(len(s.objects) for pages in docs for s, _ in pages)
    emu = EmulatorServer(port=0, latency=args.latency).start()
    backend = start_backend(backend_test_env(emu.url, DEFAULT_API_KEY))
    rows = []
    try:
        _run(backend, emu, docs[:1], template("together"), 0)  # warm-up: imports and caches
        for n, mode in enumerate(("together", "separate")):
            seconds, calls, prompt, output, found = _run(backend, emu, docs, template(mode), 1000 * (n + 1))
            k = len(docs)
            rows.append(f"| `{mode}` | {calls / k:.1f} | {prompt / k:.0f} | {output / k:.0f} | {statistics.mean(seconds):.2f} "
                        f"| {found}/{n_obj} |")
    finally:
        backend.stop()
        emu.stop()
    command = (f".venv/bin/python -m tests.benchmarks.bench_multipage --tasks {args.tasks} --pages {args.pages} "
               f"--latency {args.latency:g}")
    table = [
        f"### Multi-page documents: one request vs one per page ({args.tasks} documents of {args.pages} pages, "
        f"{n_obj} objects, emulator latency {args.latency:g} s per call, one run after a warm-up)",
        "",
        f"Command: `{command}`; `uptime` load average {os.getloadavg()[0]:.2f} (2 cores)",
        "",
        "Label Studio's multipage-documents template, `model_pages` set on its `RectangleLabels`; `auto` picks "
        "`together` here (10 pages x 25 objects x 32 tokens fit the 8,192 output tokens of a boxes request).",
        "",
        "| model_pages | Gemini calls per task | input tokens per task | output tokens per task | wall s per task "
        "| objects found on their page (IoU >= 0.9) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    OUT.write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
