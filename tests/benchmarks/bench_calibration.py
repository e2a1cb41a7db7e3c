"""Benchmark: region scores that mean "an annotator will keep this" (REVIEW_LEARN=calibration).

    .venv/bin/python -m tests.benchmarks.bench_calibration              # from the repository root
    .venv/bin/python -m tests.benchmarks.bench_calibration --tasks 200 --fp 0.4 --swap 0.05 --overconfident 0.3

Set-up, all real and on loopback: the Gemini emulator over HTTP (through the google-genai SDK) in
its realistic-mistake mode (made-up objects at `--fp`, swapped labels at `--swap`, jittered boxes,
and the overconfident confidence: informative but miscalibrated, emulator/mistakes.py), an HTTP
server serving the scene images, the full pipeline (build_pipeline, the server's code path).

1. `--tasks` tasks are predicted; simulated annotators fix each to its scene's truth; each
   annotation is matched against the prediction exactly as the webhook does (review/match.py) and
   goes into a review ledger; the learner fits REVIEW_LEARN=calibration from it.
2. `--tasks` NEW tasks are predicted under the learned state (the effective spec, its own
   model_version) and matched against their truth the same way.

Measured on the new tasks: the expected calibration error (10 equal-width bins) of Gemini's
confidence (before) and of the region scores (after), and, sorting the tasks by task score
ascending as Label Studio's Data Manager does, the share of the tasks that needed a fix (a region
deleted or relabelled, or an object missed) found in the first half.
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from pathlib import Path

from gemini_ls.emulator.mistakes import Mistakes
from gemini_ls.emulator.scenes import make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY, EmulatorServer
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.pipeline import build_pipeline
from gemini_ls.predict import TaskOutcome
from gemini_ls.review.calibration import ece
from gemini_ls.review.learning import Learner
from gemini_ls.review.ledger import MemoryLedger, contribution
from gemini_ls.review.match import Outcome, RegionOutcome, match_regions
from gemini_ls.review.reliability import render_reliability
from gemini_ls.settings import Settings
from tests.fixtures.backend import backend_test_env
from tests.fixtures.servers import ImageServer
from tests.helpers import config, rect_control, scene_rect_regions

OUT = Path(__file__).parent / "results" / "calibration.md"
PNG = Path(__file__).parent / "results" / "calibration.png"
CONFIG = config(rect_control())
NEEDS_FIX = (Outcome.DELETED, Outcome.RELABELLED, Outcome.MISSED)


def png(scene) -> bytes:
    buf = io.BytesIO()
    scene.image.save(buf, "PNG")
    return buf.getvalue()


def scenes(images: ImageServer, first: int, n: int) -> list[tuple[dict, list[dict]]]:
    """(task, truth regions) for scenes `first`..`first + n - 1` (3 to 6 objects each)."""
    out = []
    for i in range(first, first + n):
        sc = make_scene(640, 480, 3 + i % 4, seed=7700 + i)
        out.append(({"id": i, "data": {"image": images.add(f"/c{i}.png", png(sc))}}, scene_rect_regions(sc)))
    return out


def predict(pipeline, tasks: list[dict], spec, version: str) -> list[TaskOutcome]:
    out: list[TaskOutcome] = []
    for i in range(0, len(tasks), 16):
        out.extend(pipeline.runner.run(tasks[i : i + 16], spec, version, pipeline.fetch,
                                       deadline=time.monotonic() + pipeline.settings.predict_timeout))
    assert all(o.succeeded for o in out), [o.error for o in out if not o.succeeded]
    return out


def scored(outcomes: list[tuple[RegionOutcome, ...]]) -> tuple[list[float], list[float], list[bool]]:
    """(raw confidence, region score, kept) of every predicted region with a score."""
    raw, shown, kept = [], [], []
    for per_task in outcomes:
        for o in per_task:
            if o.outcome is not Outcome.MISSED and o.score is not None and o.shown is not None:
                raw.append(o.score)
                shown.append(o.shown)
                kept.append(o.outcome in (Outcome.ACCEPTED, Outcome.ADJUSTED))
    return raw, shown, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--fp", type=float, default=0.4)
    ap.add_argument("--swap", type=float, default=0.05)
    ap.add_argument("--overconfident", type=float, default=0.3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    mistakes = Mistakes(false_positive=args.fp, swap=args.swap, jitter=0.2, jitter_fraction=0.08,
                        overconfident=args.overconfident, seed=11)
    project = 1
    with EmulatorServer("127.0.0.1", 0).start() as emu, ImageServer() as images:
        emu.mistakes = mistakes
        settings = Settings.from_env({**backend_test_env(emu.url, DEFAULT_API_KEY), "GEMINI_CONCURRENCY": "4"})
        pipeline = build_pipeline(settings)
        try:
            spec = parse_label_config(CONFIG, settings.defaults)
            v1 = pipeline.model_version(spec)
            reviewed = scenes(images, 0, args.tasks)
            ledger = MemoryLedger()
            for (task, truth), o in zip(reviewed, predict(pipeline, [t for t, _ in reviewed], spec, v1)):
                ledger.replace(task["id"], contribution(task["id"], project, task["id"], v1,
                                                        match_regions(list(o.result or ()), truth)))
            state = Learner(ledger, ("calibration",)).state(project)
            assert state.calibration is not None, "too few reviews for a calibration"
            spec2 = state.applied(spec)
            v2 = pipeline.model_version(spec2)
            fresh = scenes(images, 10_000, args.tasks)
            results = predict(pipeline, [t for t, _ in fresh], spec2, v2)
        finally:
            pipeline.close()
    matched = [match_regions(list(o.result or ()), truth) for (_, truth), o in zip(fresh, results)]
    raw, shown, kept = scored(matched)
    before, after = ece(raw, kept), ece(shown, kept)
    needs_fix = [any(x.outcome in NEEDS_FIX for x in m) for m in matched]
    order = sorted(range(len(results)), key=lambda i: (results[i].score if results[i].score is not None else 1.0, i))
    half = order[: len(order) // 2]
    found = sum(needs_fix[i] for i in half)
    share = found / max(1, sum(needs_fix))
    render_reliability(raw, shown, kept, str(PNG), f"calibration benchmark: {args.tasks} new tasks")

    cmd = (f".venv/bin/python -m tests.benchmarks.bench_calibration --tasks {args.tasks} --fp {args.fp} "
           f"--swap {args.swap} --overconfident {args.overconfident}")
    lines = [
        f"### Calibration: {args.tasks} reviewed tasks, then {args.tasks} new ones (one run)",
        "",
        f"Command: `{cmd}`",
        "",
        f"RectangleLabels, 640x480 scenes with 3-6 objects; emulator mistakes false_positive={args.fp}, swap={args.swap}, "
        f"jitter=0.2 (8 %), overconfident={args.overconfident}. Annotators fix every task to its scene; the ledger "
        f"then holds {state.calibration.reviews} reviewed regions; calibration maps for "
        f"{len(state.calibration.labels)} labels plus the project-wide one; learned model_version `{v2}`.",
        "",
        "| measured on the new tasks | value | target |",
        "|---|---:|---:|",
        f"| regions scored | {len(kept)} (kept {100 * sum(kept) / max(1, len(kept)):.1f} %) | |",
        f"| ECE of Gemini's confidence (before) | {before:.3f} | |",
        f"| ECE of the calibrated region score (after) | {after:.3f} | <= 0.05 |",
        f"| tasks that needed a fix | {sum(needs_fix)} of {len(needs_fix)} | |",
        f"| of those, in the first half by task score ascending | {found} ({100 * share:.1f} %) | >= 80 % |",
        "",
        f"Reliability diagram: `results/{PNG.name}`. Task score = product of the region scores (regions/scores.py).",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
