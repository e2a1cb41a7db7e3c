"""Few-shot against the real Label Studio, a real Redis and the emulator swapping labels.

Annotators correct the first 12 predicted tasks (the scene's truth); their annotations reach the
ledger through Label Studio's webhook; the next Retrieve predictions comes under a model_version
naming the example set (-e<digest>) and every one of its Gemini requests carries the examples,
whose images were uploaded once. `gemini-ls report` shows what the examples cost per request,
and `gemini-ls evaluate --variant few_shot=0 --variant few_shot=3` compares both side by side on
the reviewed tasks, the example tasks held out.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from gemini_ls.emulator.mistakes import Mistakes
from gemini_ls.emulator.scenes import encode_image, make_scene
from tests.helpers import colour_labels, config, scene_rect_regions

from .helpers import backend_env, start_backend_process
from .test_review_loop import run_cli

pytestmark = pytest.mark.e2e

CONFIG = config(f'<RectangleLabels name="rect" toName="image">{colour_labels()}</RectangleLabels>')
N_FIRST, N_NEXT = 12, 8


def model_version(backend, project: int) -> str:
    r = requests.post(backend.url + "/setup", json={"schema": CONFIG, "project": f"{project}.1"}, timeout=30)
    r.raise_for_status()
    return r.json()["model_version"]


@pytest.mark.timeout(900)
def test_few_shot_loop(label_studio, emulator_factory, cors_images, redis_url, redis_prefix):
    ls = label_studio
    emu = emulator_factory()
    emu.mistakes = Mistakes(swap=0.3, seed=5)
    env = backend_env(emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, WRITE_BACK="false",
                      FEW_SHOT_EXAMPLES="3", GEMINI_FILES="auto")
    backend = start_backend_process("fewshot", env)
    project = ls.create_project("few-shot", CONFIG)["id"]
    scenes = [make_scene(320, 240, 4, seed=8800 + i) for i in range(N_FIRST + N_NEXT)]
    tasks = [{"image": cors_images.add(f"fewshot/{i}.png", encode_image(sc.image, "png"), "image/png"), "n": i}
             for i, sc in enumerate(scenes)]
    first = ls.import_tasks(project, tasks[:N_FIRST])
    scene_of = {t["id"]: scenes[t["data"]["n"]] for t in ls.tasks(project)}
    v1 = ls.connect_ml_backend(project, backend.url)["model_version"]
    assert "-e" not in v1.split("-p1-")[1]
    ls.retrieve_predictions(project, first)
    for tid in first:
        assert [p for p in ls.predictions(tid) if p["model_version"] == v1]
        ls.post(f"/api/tasks/{tid}/annotations", {"result": scene_rect_regions(scene_of[tid])})

    # the learner refits at most every 30 s: the example set appears in model_version then
    deadline = time.monotonic() + 90
    while "-e" not in (v2 := model_version(backend, project)).split("-p1-")[1] and time.monotonic() < deadline:
        time.sleep(2)
    assert v2.startswith(v1 + "-e"), (v1, v2)
    uploads = emu.counters()["uploads"]
    after = ls.import_tasks(project, tasks[N_FIRST:])
    scene_of.update({t["id"]: scenes[t["data"]["n"]] for t in ls.tasks(project)})
    ls.retrieve_predictions(project, after)
    for tid in after:
        assert [p["model_version"] for p in ls.predictions(tid)] == [v2]
    assert emu.counters()["uploads"] - uploads == 3  # the three example images, once for all the tasks
    assert backend.metric("gemini_ls_few_shot_requests_total") == N_NEXT

    for tid in after:  # the same annotators review these too
        ls.post(f"/api/tasks/{tid}/annotations", {"result": scene_rect_regions(scene_of[tid])})
    redis_env = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix}
    report = run_cli(ls, "report", "--project", str(project), extra_env=redis_env)
    print(report)
    totals = run_cli(ls, "report", "--project", str(project), "--format", "json", extra_env=redis_env)
    share = {v: d["labels"]["all"]["relabelled"] / max(1, d["labels"]["all"]["predicted"])
             for v, d in json.loads(totals)["model_versions"].items()}
    assert share[v2] < share[v1]  # the emulator swaps labels the examples show less often
    tag = v2.rsplit("-", 1)[1]
    line = next(line for line in report.splitlines() if line.startswith(f"few-shot {tag}:"))
    assert line.startswith(f"few-shot {tag}: 3 examples, +") and f"over {N_NEXT} requests" in line

    evaluated = run_cli(ls, "evaluate", "--project", str(project), "--variant", "name=k0,few_shot=0",
                        "--variant", "name=k3,few_shot=3",
                        extra_env={"GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": "emulator-key", "FETCH_ALLOWLIST": "127.0.0.1"})
    print(evaluated)
    rows = {c[0]: c[1:] for c in ([x.strip() for x in line.split("|")[1:-1]] for line in evaluated.splitlines()
                                  if line.startswith("| "))}
    assert rows["k0"][1] == rows["k3"][1] == str(N_FIRST + N_NEXT - 3)  # the example tasks are graded by neither
    assert float(rows["k0"][4]) == 0 and float(rows["k3"][4]) > 500  # few-shot input tokens per task
    assert float(rows["all"][3]) > float(rows["all"][0])  # fewer swapped labels: higher precision with examples
    backend.stop()
