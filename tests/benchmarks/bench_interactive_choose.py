"""Benchmark (issue 24 item 6): the annotator's object when the model answers EVERY object of the label.

The emulator's "interactive_all" fault answers each click or box prompt with all objects of the asked
label, largest first (a model ignoring "exactly ONE entry"). Over N random scenes (6 objects in 3
colours, so most colours appear 2-3 times), every object that shares its colour with another gets a
click (on its pixel nearest its box centre) and a box (its box plus 6 px); each interaction goes
through the real InteractiveService, the real SDK and HTTP to the emulator, twice:
- first entry: Gemini's first entry kept (the behaviour before issue 24, `_first_entry` below);
- chosen entry: interactive/choose.py (the entry under the points / best overlapping the box).
Correct = exactly one brush region, mask IoU >= 0.8 with the clicked object.

Run:  .venv/bin/python -m tests.benchmarks.bench_interactive_choose [--scenes 30]
Writes tests/benchmarks/results/interactive_choose.md.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from gemini_ls.backend import build_backend
from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from gemini_ls.interactive import service as service_mod
from gemini_ls.interactive.choose import Choice, Why
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.settings import Settings
from tests.fixtures.backend import backend_test_env
from tests.helpers import brush_mask, data_uri, interactive_config

OUT = Path(__file__).parent / "results" / "interactive_choose.md"
CONFIG = interactive_config()
W, H = 960, 720
PAD = 6


def _first_entry(answer, interaction, label, threshold):
    """Before issue 24: Gemini's first entry, whatever it is."""
    kept = [d for d in answer.detections if d.box is not None][:1]
    return replace(answer, detections=tuple(replace(d, label=label) for d in kept), derived={}), Choice(
        0 if kept else None, Why.POINTS if kept else Why.NONE)


def _click(obj):
    mask = obj.full_mask(W, H)
    ys, xs = np.nonzero(mask)
    cx, cy = obj.centre
    i = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
    return {"type": "keypointlabels", "from_name": "kp", "to_name": "image", "is_positive": True,
            "value": {"x": (xs[i] + 0.5) / W * 100, "y": (ys[i] + 0.5) / H * 100, "keypointlabels": [obj.colour.capitalize()]}}


def _box(obj):
    x0, y0, x1, y1 = obj.box
    x0, y0, x1, y1 = max(0, x0 - PAD), max(0, y0 - PAD), min(W, x1 + PAD), min(H, y1 + PAD)
    return {"type": "rectanglelabels", "from_name": "box", "to_name": "image",
            "value": {"x": x0 / W * 100, "y": y0 / H * 100, "width": (x1 - x0) / W * 100, "height": (y1 - y0) / H * 100,
                      "rectanglelabels": [obj.colour.capitalize()]}}


def _grade(outcome, obj) -> str:
    brushes = [r for r in (outcome.result or ()) if r["type"] == "brushlabels"] if outcome is not None else []
    if not brushes:
        return "empty"
    if len(brushes) > 1:
        return "wrong"
    truth = obj.full_mask(W, H)
    got = brush_mask(brushes[0])
    iou = np.logical_and(got, truth).sum() / max(1, np.logical_or(got, truth).sum())
    return "correct" if iou >= 0.8 else "wrong"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=30)
    args = parser.parse_args()
    emu = EmulatorServer(port=0).start()
    emu.add_fault("interactive_all", rate=1.0)
    backend = build_backend(Settings.from_env(backend_test_env(emu.url, DEFAULT_API_KEY)))
    spec = parse_label_config(CONFIG, backend.settings.defaults)
    service = backend.interactive
    chosen_fn = service_mod._one_object
    tally: dict[tuple[str, str], Counter] = {}
    targets = 0
    seconds: dict[str, list[float]] = {"first": [], "chosen": []}
    try:
        for seed in range(args.scenes):
            scene = make_scene(W, H, 6, seed=2400 + seed, colours=("red", "green", "blue"))
            uri = data_uri(encode_image(scene.image, "png"), "image/png")
            by_colour = Counter(o.colour for o in scene.objects)
            for n, obj in enumerate(o for o in scene.objects if by_colour[o.colour] >= 2):
                targets += 1
                for prompt, region in (("click", _click(obj)), ("box", _box(obj))):
                    for mode, fn in (("first", _first_entry), ("chosen", chosen_fn)):
                        service_mod._one_object = fn  # type: ignore[assignment]
                        task = {"id": f"{seed}-{n}", "data": {"image": uri}}
                        started = time.monotonic()
                        outcome, _ = service.run(task, spec, {"result": [region]}, deadline=time.monotonic() + 60)
                        seconds[mode].append(time.monotonic() - started)
                        tally.setdefault((prompt, mode), Counter())[_grade(outcome, obj)] += 1
    finally:
        service_mod._one_object = chosen_fn  # type: ignore[assignment]
        backend.runner.shutdown()
        backend.emulator and backend.emulator.stop()
        emu.stop()
    lines = [
        f"### Interactive: first entry vs chosen entry when the model answers every object of the label "
        f"({args.scenes} scenes, {targets} objects sharing their colour, one run)",
        "",
        f"Command: `.venv/bin/python -m tests.benchmarks.bench_interactive_choose --scenes {args.scenes}` "
        f"(machine load average during the run: {os.getloadavg()[0]:.1f} on 2 cores)",
        "",
        "| prompt | kept entry | interactions | correct (IoU >= 0.8) | wrong object | nothing |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (prompt, mode), counts in tally.items():
        total = sum(counts.values())
        lines.append(f"| {prompt} | {mode} | {total} | {counts['correct'] / total:.1%} | {counts['wrong']} | {counts['empty']} |")
    lines += [
        "",
        f"Median wall time per interaction: first {np.median(seconds['first']) * 1000:.0f} ms, chosen "
        f"{np.median(seconds['chosen']) * 1000:.0f} ms (emulator included; the choice itself is point-in-mask tests).",
    ]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
