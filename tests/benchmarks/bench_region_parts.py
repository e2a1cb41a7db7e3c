"""Benchmark (issue 23 items 1-2): what the per-region questions cost when asked in the regions' call.

The OCR template's shape (`<Labels>` + `<Rectangle>`) with colour labels, without and with four
per-region controls (TextArea, Choices, Number, Rating), on the same emulator scenes through
/predict: Gemini calls, tokens and wall time per task, box IoU with the ground truth, and how many
regions carry the right description (the emulator answers it from the object's pixels).

Run:  .venv/bin/python -m tests.benchmarks.bench_region_parts [--scenes 24]
Writes tests/benchmarks/results/region_parts.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from gemini_ls.emulator.scenes import box_iou, encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from tests.fixtures.backend import backend_test_env, start_backend
from tests.helpers import colour_labels, config, data_uri
from tests.region_parts import pixel_box, regions_by_id

OUT = Path(__file__).parent / "results" / "region_parts.md"
BASE = (f'<Labels name="label" toName="image">{colour_labels()}</Labels>'
        '<Rectangle name="bbox" toName="image" model_max_objects="40"/>')
PER_REGION = (
    '<TextArea name="description" toName="image" perRegion="true" placeholder="Describe the object"/>'
    '<Choices name="shape" toName="image" perRegion="true"><Choice value="Square"/><Choice value="Rectangle"/>'
    '<Choice value="Circle"/><Choice value="Triangle"/></Choices>'
    '<Number name="corners" toName="image" perRegion="true" min="0" max="10" model_prompt="How many corners?"/>'
    '<Rating name="size" toName="image" perRegion="true"/>'
)


def _scenes(n: int):
    out = []
    for i in range(n):
        scene = make_scene(640 + 40 * i, 480, 1 + (i * 7) % 20, seed=700 + i, background="noisy" if i % 3 == 0 else "plain")
        out.append((scene, data_uri(encode_image(scene.image, "png"), "image/png")))
    return out


def _run(backend, emu, scenes, cfg, first_id):
    """`first_id`: each pass its own task ids (a finished task is not predicted again)."""
    before = emu.counters()
    ious, described, regions, seconds = [], 0, 0, []
    for i, (scene, uri) in enumerate(scenes):
        started = time.perf_counter()
        r = backend.post("/predict", {"tasks": [{"id": first_id + i, "data": {"image": uri}}], "label_config": cfg})
        seconds.append(time.perf_counter() - started)
        r.raise_for_status()
        for parts in regions_by_id(r.json()["results"][0]["result"]).values():
            box = pixel_box(parts["bbox"])
            obj = max(scene.objects, key=lambda o: box_iou(box, o.box))
            ious.append(box_iou(box, obj.box))
            regions += 1
            described += "description" in parts and parts["description"]["value"]["text"] == [obj.name]
    after = emu.counters()
    calls = after["requests"].get("generateContent", 0) - before["requests"].get("generateContent", 0)
    tokens = after["tokens"]["total"] - before["tokens"]["total"]
    return ious, described, regions, calls, tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=24)
    args = parser.parse_args()
    scenes = _scenes(args.scenes)
    emu = EmulatorServer(port=0).start()
    backend = start_backend(backend_test_env(emu.url, DEFAULT_API_KEY))
    try:
        _run(backend, emu, scenes, config(BASE), 0)  # warm-up: the first pass pays for imports and caches
        plain = _run(backend, emu, scenes, config(BASE), 1000)
        asked = _run(backend, emu, scenes, config(BASE, PER_REGION), 2000)
    finally:
        backend.stop()
        emu.stop()
    n_obj = sum(len(s.objects) for s, _ in scenes)
    rows = []
    for name, (ious, described, regions, calls, tokens, seconds) in (
        ("Labels + Rectangle", plain), ("+ 4 per-region controls (same call)", asked)):
        rows.append(f"| {name} | {regions} | {statistics.mean(ious):.3f} / {min(ious):.3f} | {described} | {calls / len(scenes):.2f} "
                    f"| {tokens / len(scenes):.0f} | {1000 * statistics.median(seconds):.1f} |")
    command = f".venv/bin/python -m tests.benchmarks.bench_region_parts --scenes {args.scenes}"
    table = [
        f"### Per-region questions in the regions' call ({args.scenes} scenes, {n_obj} objects, one run after a warm-up, "
        f"load {os.getloadavg()[0]:.2f})",
        "",
        f"Command: `{command}`",
        "",
        "| config | regions | box IoU mean / min | right descriptions | Gemini calls per task | tokens per task | median ms per task |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    OUT.write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
