"""Benchmark (issue 5): is one combined segmentation request as accurate as separate requests?

A config with RectangleLabels + BrushLabels + PolygonLabels on one image can be served by ONE
segmentation request (its box_2d gives the rectangles) or by three (detection for rectangles, one
segmentation request per mask control). Both ways run against the emulator on the same scenes;
the table compares IoU with the ground truth, Gemini calls and tokens.

Run:  .venv/bin/python -m tests.benchmarks.bench_combined [--scenes 24]
Writes tests/benchmarks/results/combined.md.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from tests.fixtures.backend import backend_test_env, start_backend
from tests.helpers import brush_control, brush_ious, config, data_uri, polygon_control, polygon_ious, rect_control, rect_ious

OUT = Path(__file__).parent / "results" / "combined.md"
MAX = 'model_max_objects="40"'


def _scenes(n: int):
    out = []
    for i in range(n):
        fmt = "png" if i % 2 == 0 else "jpeg"
        scene = make_scene(640 + 40 * i, 480, 1 + (i * 7) % 20, seed=500 + i, background="noisy" if i % 3 == 0 else "plain")
        out.append((scene, data_uri(encode_image(scene.image, fmt), f"image/{fmt}")))
    return out


def _run(backend, emu, scenes, cfgs):
    """Predict every scene with each config in `cfgs`; returns per-type IoU lists, calls and tokens."""
    before = emu.counters()
    ious = {"rectanglelabels": [], "brushlabels": [], "polygonlabels": []}
    for i, (scene, uri) in enumerate(scenes):
        result = []
        for cfg in cfgs:
            r = backend.post("/predict", {"tasks": [{"id": i, "data": {"image": uri}}], "label_config": cfg})
            r.raise_for_status()
            result += r.json()["results"][0]["result"]
        ious["rectanglelabels"] += rect_ious(result, scene)
        ious["brushlabels"] += brush_ious(result, scene)
        ious["polygonlabels"] += polygon_ious(result, scene)
    after = emu.counters()
    calls = after["requests"].get("generateContent", 0) - before["requests"].get("generateContent", 0)
    tokens = after["tokens"]["total"] - before["tokens"]["total"]
    return ious, calls, tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=24)
    args = parser.parse_args()
    scenes = _scenes(args.scenes)
    emu = EmulatorServer(port=0).start()
    backend = start_backend(backend_test_env(emu.url, DEFAULT_API_KEY))
    try:
        combined = _run(backend, emu, scenes, [config(rect_control(extra=MAX), brush_control(extra=MAX), polygon_control(extra=MAX))])
        separate = _run(
            backend, emu, scenes, [config(rect_control(extra=MAX)), config(brush_control(extra=MAX)), config(polygon_control(extra=MAX))]
        )
    finally:
        backend.stop()
        emu.stop()
    n_obj = sum(len(s.objects) for s, _ in scenes)
    rows = []
    for name, (ious, calls, tokens) in (
        ("combined (1 segmentation request)", combined),
        ("separate (detection + 2 segmentation)", separate),
    ):
        cells = [f"{statistics.mean(ious[t]):.3f} / {min(ious[t]):.3f}" for t in ("rectanglelabels", "brushlabels", "polygonlabels")]
        rows.append(f"| {name} | {' | '.join(cells)} | {calls} | {tokens} |")
    command = f".venv/bin/python -m tests.benchmarks.bench_combined --scenes {args.scenes}"
    table = [
        f"### One combined request vs separate requests ({args.scenes} scenes, {n_obj} objects, one run)",
        "",
        f"Command: `{command}`",
        "",
        "| requests per task | rectangle IoU mean / min | brush IoU mean / min | polygon IoU mean / min | Gemini calls | tokens |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    OUT.write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
