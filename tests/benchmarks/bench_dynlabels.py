"""Benchmark: labels from the task (the inventory-tracking template), products found by their
reference pictures vs by their names only: calls, prompt tokens, uploads, bytes and wall time per task.

    .venv/bin/python -m tests.benchmarks.bench_dynlabels --tasks 20 --out tests/benchmarks/results/dynlabels.md

Set-up, real and on loopback: the Gemini emulator (HTTP), an HTTP server serving the shelf photos and
the product pictures, and our backend's own HTTP server (in-process) through the google-genai SDK,
GEMINI_FILES=auto, GEMINI_CONCURRENCY=1 (wall time / N is the per-task latency). Each task is its own
shelf (1024x768, noisy, 5 products + 1 distractor); every task names the same 5 products:
- "pictures": `{"value": "CocaCola", "html": "<img src=...>"}` (the template's form), the emulator
  matching each picture to the shelf by colour and outline;
- "names": `{"value": "red circle"}`, the emulator reading the colour and shape words.
Found: share of the shelf's products predicted with the right label (polygon box IoU >= 0.8).
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gemini_ls.emulator.scenes import Scene, box_iou, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from tests.fixtures.backend import backend_test_env, start_backend
from tests.fixtures.servers import ImageServer
from tests.helpers import config

INVENTORY = config('<PolygonLabels name="objects" toName="image" value="$objects"/>')
PRODUCTS = {"CocaCola": "red circle", "RedBull": "blue square", "Burn": "green triangle",
            "Breezer": "orange rectangle", "Monster": "purple circle"}


def _png(scene: Scene) -> bytes:
    buf = io.BytesIO()
    scene.image.save(buf, "PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Row:
    mode: str
    calls: float
    prompt_tokens: float
    uploads_total: int
    bytes_per_task: float
    wall_per_task: float
    found: float


def _found(result: list[dict], scene: Scene, names: dict[str, str]) -> int:
    hits = 0
    for region in result:
        (label,) = region["value"]["polygonlabels"]
        xs = [p[0] / 100 * scene.width for p in region["value"]["points"]]
        ys = [p[1] / 100 * scene.height for p in region["value"]["points"]]
        box = (min(xs), min(ys), max(xs), max(ys))
        obj = max(scene.objects, key=lambda o: box_iou(box, o.box))
        hits += int(box_iou(box, obj.box) >= 0.8 and obj.name == names.get(label))
    return hits


def bench(n_tasks: int) -> list[Row]:
    rows = []
    emu = EmulatorServer(port=0).start()
    try:
        with ImageServer() as images:
            pictures = {label: images.add(f"/products/{label}.png", _png(make_scene(120, 120, names=[name], seed=i)))
                        for i, (label, name) in enumerate(PRODUCTS.items())}
            scenes = [make_scene(1024, 768, names=[*PRODUCTS.values(), "cyan square"], seed=900 + i, background="noisy")
                      for i in range(n_tasks)]
            shelves = [images.add(f"/shelf-{i}.png", _png(s)) for i, s in enumerate(scenes)]
            modes = {
                "pictures": ([{"value": k, "html": f"<img width='100' src='{v}'/>"} for k, v in pictures.items()],
                             PRODUCTS),
                "names": ([{"value": name} for name in PRODUCTS.values()], {n: n for n in PRODUCTS.values()}),
            }
            for mode, (objects, names) in modes.items():
                env = backend_test_env(emu.url, DEFAULT_API_KEY) | {"GEMINI_CONCURRENCY": "1", "GEMINI_FILES": "auto"}
                backend = start_backend(env)
                try:
                    tasks = [{"id": i + 1, "data": {"image": url, "objects": objects}} for i, url in enumerate(shelves)]
                    before = emu.counters()
                    started = time.monotonic()
                    resp = backend.post("/predict", {"tasks": tasks, "label_config": INVENTORY}, timeout=600)
                    wall = time.monotonic() - started
                    after = emu.counters()
                    resp.raise_for_status()
                    results = resp.json()["results"]
                    found = sum(_found(r.get("result", []), s, names) for r, s in zip(results, scenes, strict=True))
                    rows.append(Row(
                        mode=mode,
                        calls=(after["requests"].get("generateContent", 0) - before["requests"].get("generateContent", 0)) / n_tasks,
                        prompt_tokens=(after["tokens"]["prompt"] - before["tokens"]["prompt"]) / n_tasks,
                        uploads_total=after["uploads"] - before["uploads"],
                        bytes_per_task=(after["bytes_received"] - before["bytes_received"]) / n_tasks,
                        wall_per_task=wall / n_tasks,
                        found=found / (len(PRODUCTS) * n_tasks),
                    ))
                finally:
                    backend.stop()
    finally:
        emu.stop()
    return rows


def table(rows: list[Row], n_tasks: int, command: str, load: str) -> str:
    lines = [
        f"#### Labels from the task: reference pictures vs names ({n_tasks} tasks, one run)",
        "",
        f"Command: `{command}` (load average before the run: {load})",
        "",
        "| labels | calls / task | prompt tokens / task | uploads (all tasks) | bytes to Gemini / task | wall s / task | products found |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.mode} | {r.calls:.2f} | {r.prompt_tokens:.0f} | {r.uploads_total} | {r.bytes_per_task:,.0f} "
                     f"| {r.wall_per_task:.3f} | {r.found:.0%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    command = ".venv/bin/python -m tests.benchmarks.bench_dynlabels " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(bench(args.tasks), args.tasks, command.strip(), " ".join(load))
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
