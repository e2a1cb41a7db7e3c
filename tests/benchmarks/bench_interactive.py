"""Benchmark (issue 17): backend time beyond Gemini's for one interactive pre-annotation on a 12 MP photo.

A 4000 x 3000 JPEG scene (12 MP, noisy "photo" background, 12 objects) is the task image. Each
interaction (a click, a drawn box, a typed phrase) goes through the real InteractiveService with the
real SDK to the emulator; `Timings` splits the wall time into the Gemini call (request, the
emulator's own vision, answer parsing) and the rest: context parsing, fetch (a data: URI), decode and
downscale or crop, mask rasterization / resize, RLE encoding, polygons, Label Studio validation.

"cold" is the first interaction on a task (download + decode of the 12 MP image); "warm" the ones
after it on the same task (the prepared image is kept, as when an annotator clicks again). A
"session" is one cold and --warm warm interactions on one task, like an annotator refining a region.

Run:  .venv/bin/python -m tests.benchmarks.bench_interactive [--runs 8] [--warm 4]
Writes tests/benchmarks/results/interactive.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from gemini_ls.backend import build_backend
from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from gemini_ls.interactive.context import parse_context
from gemini_ls.interactive.crop import crop_frame
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.settings import Settings
from tests.fixtures.backend import backend_test_env
from tests.helpers import data_uri, interactive_config

OUT = Path(__file__).parent / "results" / "interactive.md"
CONFIG = interactive_config()


def _contexts(scene):
    w, h = scene.width, scene.height
    obj = max(scene.objects, key=lambda o: o.area)
    x, y = obj.centre
    x0, y0, x1, y1 = obj.box
    click = {"type": "keypointlabels", "from_name": "kp", "to_name": "image", "is_positive": True,
             "value": {"x": x / w * 100, "y": y / h * 100, "keypointlabels": [obj.colour.capitalize()]}}
    box = {"type": "rectanglelabels", "from_name": "box", "to_name": "image",
           "value": {"x": x0 / w * 100, "y": y0 / h * 100, "width": (x1 - x0) / w * 100, "height": (y1 - y0) / h * 100,
                     "rectanglelabels": [obj.colour.capitalize()]}}
    phrase = {"type": "textarea", "from_name": "prompt", "to_name": "image",
              "value": {"text": [f"the {obj.colour} {obj.shape}s"]}}
    return {"click": {"result": [click]}, "box": {"result": [box]}, "phrase": {"result": [phrase]}}


def _pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--warm", type=int, default=4)
    args = parser.parse_args()
    scene = make_scene(4000, 3000, 12, seed=1712, background="noisy")
    jpeg = encode_image(scene.image, "jpeg")
    uri = data_uri(jpeg, "image/jpeg")
    emu = EmulatorServer(port=0).start()
    backend = build_backend(Settings.from_env(backend_test_env(emu.url, DEFAULT_API_KEY)))
    spec = parse_label_config(CONFIG, backend.settings.defaults)
    service = backend.interactive
    rows = []
    try:
        contexts = _contexts(scene)
        for name, context in contexts.items():
            cold: list[float] = []
            warm: list[float] = []
            gemini: list[float] = []
            regions = 0
            for run in range(args.runs):
                task = {"id": f"{name}-{run}", "data": {"image": uri}}
                for step in range(1 + args.warm):
                    outcome, timings = service.run(task, spec, context, deadline=time.monotonic() + 60)
                    assert outcome is not None and outcome.status == "ok", outcome
                    (warm if step else cold).append(timings.backend * 1000)
                    gemini.append(timings.gemini * 1000)
                    regions = len(outcome.result or ())
            rows.append((name, statistics.median(cold), statistics.median(warm), _pct(warm, 0.9),
                         statistics.median(cold + warm), statistics.median(gemini), regions))
        interaction = parse_context(contexts["box"])
        frame = crop_frame(interaction.box, scene.width, scene.height)  # type: ignore[arg-type]
        crop = (frame.x1 - frame.x0, frame.y1 - frame.y0)
    finally:
        backend.runner.shutdown()
        backend.emulator and backend.emulator.stop()
        emu.stop()
    lines = [
        f"### Interactive pre-annotation: backend time beyond Gemini's, 12 MP photo ({args.runs} sessions of "
        f"1 + {args.warm} interactions per kind, one run)",
        "",
        f"Command: `.venv/bin/python -m tests.benchmarks.bench_interactive --runs {args.runs} --warm {args.warm}` "
        f"(machine load average during the run: {os.getloadavg()[0]:.1f} on 2 cores)",
        "",
        f"Image: {scene.width} x {scene.height} JPEG ({len(jpeg) / 1e6:.1f} MB, as a data: URI), 12 objects; config with "
        "smart KeyPointLabels + RectangleLabels (prompts), BrushLabels + PolygonLabels (outputs), TextArea (phrase). "
        f"The box prompt's crop is {crop[0]:.0f} x {crop[1]:.0f} px of the image, sent at <= 768 px.",
        "",
        "| interaction | cold median ms | warm median ms | warm p90 ms | session median ms | Gemini (emulator) median ms | regions |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cm, wm, w90, sm, gm, n in rows:
        lines.append(f"| {name} | {cm:.1f} | {wm:.1f} | {w90:.1f} | {sm:.1f} | {gm:.1f} | {n} |")
    lines += [
        "",
        "Backend time = the interaction's wall time minus the Gemini call. cold = first interaction on the task "
        "(data: URI decoded, 12 MP JPEG decoded at 1/2 scale by libjpeg and downscaled to IMAGE_MAX_SIDE); "
        "warm = a following click/box/phrase on the same task (the prepared image is reused; a box crops from the "
        "full-resolution decode kept for the last two images, so the first box also pays one full 12 MP decode). "
        "session = all interactions of the sessions pooled: what an annotator refining regions sees. The machine "
        "was shared with other jobs (load above), so absolute times are pessimistic.",
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
