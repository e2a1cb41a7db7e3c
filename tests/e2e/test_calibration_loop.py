"""Calibrated scores against the real Label Studio, a real Redis and the emulator's overconfident
mistake mode (REVIEW_LEARN=calibration).

Simulated annotators fix the first N_FIRST predicted tasks to their scenes' truth; Label Studio's
webhook fills the review ledger; the learner fits the calibration, which appears in model_version
("-l<digest>"). The next N_NEXT tasks are predicted under it: each region's `score` is the
calibrated keep-probability (Gemini's confidence kept beside it), each task's score the product
over its regions. A Data Manager view sorted by prediction score ascending (`tasks:predictions_score`,
what a reviewer clicks) must put the tasks the annotators would have to fix first: at least 80 %
of them in the first half. `gemini-ls report` prints the expected calibration error before and
after and writes the reliability diagram.
"""

from __future__ import annotations

import math
import re
import time

import pytest
import requests

from gemini_ls.emulator.mistakes import Mistakes
from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.regions.result import CONFIDENCE_KEY
from gemini_ls.review.match import Outcome, match_regions
from tests.helpers import config, rect_control, scene_rect_regions

from .helpers import backend_env, start_backend_process
from .test_review_loop import run_cli

pytestmark = pytest.mark.e2e

CONFIG = config(rect_control())
MISTAKES = Mistakes(false_positive=0.3, swap=0.05, jitter=0.2, jitter_fraction=0.08, overconfident=0.15, seed=21)
N_FIRST, N_NEXT = 100, 100
NEEDS_FIX = (Outcome.DELETED, Outcome.RELABELLED, Outcome.MISSED)


def model_version(backend, project: int) -> str:
    r = requests.post(backend.url + "/setup", json={"schema": CONFIG, "project": f"{project}.1"}, timeout=30)
    r.raise_for_status()
    return r.json()["model_version"]


def sorted_by_prediction_score(ls, project: int) -> list[dict]:
    """The project's tasks as the Data Manager lists them in a view sorted by prediction score."""
    view = ls.post("/api/dm/views", {"project": project, "data": {"ordering": ["tasks:predictions_score"]}})
    body = ls.get(f"/api/tasks?view={view['id']}&project={project}&page=1&page_size={N_FIRST + N_NEXT + 10}")
    return body["tasks"] if isinstance(body, dict) else body


@pytest.mark.timeout(1500)
def test_calibrated_scores_sort_the_data_manager(label_studio, emulator_factory, cors_images, redis_url, redis_prefix,
                                                  tmp_path):
    ls = label_studio
    emu = emulator_factory()
    emu.mistakes = MISTAKES
    env = backend_env(emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, WRITE_BACK="false",
                      REVIEW_LEARN="calibration")
    backend = start_backend_process("calibration", env)
    try:  # stopped also when an assertion fails (a leaked backend fails the session)
        project = ls.create_project("calibration", CONFIG)["id"]
        scenes = [make_scene(640, 480, 3 + i % 4, seed=7700 + i) for i in range(N_FIRST + N_NEXT)]
        tasks = [{"image": cors_images.add(f"calib/{i}.png", encode_image(sc.image, "png"), "image/png"), "n": i}
                 for i, sc in enumerate(scenes)]
        first = ls.import_tasks(project, tasks[:N_FIRST])
        truth = {t["id"]: scene_rect_regions(scenes[t["data"]["n"]]) for t in ls.tasks(project)}
        v1 = ls.connect_ml_backend(project, backend.url)["model_version"]
        for i in range(0, N_FIRST, 50):
            ls.retrieve_predictions(project, first[i : i + 50])
        for tid in first:  # the annotators fix every task to its truth; the webhook fills the ledger
            (pred,) = [p for p in ls.predictions(tid) if p["model_version"] == v1]
            assert all(CONFIDENCE_KEY not in r for r in pred["result"])  # nothing learned yet: Gemini's confidence
            ls.post(f"/api/tasks/{tid}/annotations", {"result": truth[tid], "parent_prediction": pred["id"]})

        deadline = time.monotonic() + 120  # the learner refits at most every 30 s
        while not (v2 := model_version(backend, project)).startswith(v1 + "-l") and time.monotonic() < deadline:
            time.sleep(2)
        assert re.fullmatch(re.escape(v1) + r"-l[0-9a-f]{8}", v2), (v1, v2)

        after = ls.import_tasks(project, tasks[N_FIRST:])
        truth.update({t["id"]: scene_rect_regions(scenes[t["data"]["n"]]) for t in ls.tasks(project) if t["id"] in after})
        for i in range(0, N_NEXT, 50):
            ls.retrieve_predictions(project, after[i : i + 50])
        needs_fix: dict[int, bool] = {}
        for tid in after:
            (pred,) = ls.predictions(tid)
            assert pred["model_version"] == v2
            regions = pred["result"]
            assert regions and all(isinstance(r[CONFIDENCE_KEY], float) and 0 <= r["score"] <= 1 for r in regions)
            assert pred["score"] == pytest.approx(math.prod(r["score"] for r in regions), abs=1e-3)
            needs_fix[tid] = any(o.outcome in NEEDS_FIX for o in match_regions(regions, truth[tid]))
        assert 0.2 * N_NEXT <= sum(needs_fix.values()) <= 0.6 * N_NEXT, sum(needs_fix.values())

        # Label Studio's predictions_score is the mean score of the predictions of the project's selected
        # model version (Settings > Annotation > Prelabeling; connecting a backend selects its title,
        # which no prediction carries): the reviewer selects the learned version
        ls.patch(f"/api/projects/{project}", {"model_version": v2})
        listed = sorted_by_prediction_score(ls, project)
        order = [t["id"] for t in listed if t["id"] in needs_fix]
        assert sorted(order) == sorted(after)
        scores = {tid: ls.predictions(tid)[0]["score"] for tid in after}
        assert [t.get("predictions_score") for t in listed if t["id"] in scores] == [scores[t] for t in order]
        assert all(scores[a] <= scores[b] for a, b in zip(order, order[1:])), "the Data Manager did not sort by our score"
        first_half = order[: N_NEXT // 2]
        found = sum(needs_fix[t] for t in first_half)
        share = found / sum(needs_fix.values())
        print(f"tasks needing a fix: {sum(needs_fix.values())} of {N_NEXT}; {found} ({100 * share:.0f} %) in the first half")
        assert share >= 0.8

        png = tmp_path / "reliability.png"
        report = run_cli(ls, "report", "--project", str(project), "--reliability", str(png))
        print(report)
        line = next(x for x in report.splitlines() if x.startswith("calibration: "))
        before, after_ece = (float(x) for x in re.findall(r"error (\d\.\d+) before .* -> (\d\.\d+) after", line)[0])
        assert after_ece < before and after_ece <= 0.08, line
        assert png.stat().st_size > 10_000
    finally:
        backend.stop()
