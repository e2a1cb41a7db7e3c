"""The annotator review loop against the real Label Studio, a real Redis and the emulator making
mistakes at set rates.

Simulated annotators drive Label Studio through its REST API over 200 predicted tasks: they
delete every yellow detection and every made-up object, shift blue boxes by 10 % of their width,
snap jittered boxes to the object, relabel "Purple" to "Magenta" (and swapped labels to the right
one), and draw the green objects Gemini missed ("Leaf"). The test counts what they did itself;
the webhook-fed ledger (/metrics) and `gemini-ls report` must agree with that count exactly,
through a backend restart between prediction and annotation, Label Studio delivering every event
twice (its ML-backend webhook and the one we configure through /api/webhooks), replayed bodies,
updated and deleted annotations. Then, with learning on, 100 new tasks are predicted under the
learned model_version and their deletion rate must fall below 5 %.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import string
import subprocess
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import requests

from gemini_ls.emulator.mistakes import Mistakes
from gemini_ls.emulator.scenes import Scene, box_iou, encode_image, make_scene

from .helpers import GEMINI_LS_BIN, backend_env, rect_to_box, start_backend_process

pytestmark = pytest.mark.e2e

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="rect" toName="image">
    <Label value="Red" hint="red shapes"/>
    <Label value="Yellow" hint="yellow shapes"/>
    <Label value="Purple" hint="purple shapes"/>
    <Label value="Magenta" hint="magenta shapes"/>
    <Label value="Blue" hint="blue shapes"/>
    <Label value="Leaf" hint="leaf-coloured things"/>
  </RectangleLabels>
</View>"""
COLOURS = ("red", "yellow", "purple", "magenta", "blue", "green")
# what the annotators want each colour called (None: they delete it); green is never found by the
# emulator ("leaf-coloured" names no colour it knows), so every green object is a missed "Leaf"
WANTED = {"red": "Red", "yellow": None, "purple": "Magenta", "magenta": "Magenta", "blue": "Blue", "green": "Leaf"}
MISTAKES = Mistakes(false_positive=0.6, jitter=0.15, jitter_fraction=0.12, swap=0.05, seed=3)
N_FIRST, N_NEXT = 200, 100
DOCS = os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1"


def scene(i: int) -> Scene:
    return make_scene(320, 240, 4, seed=5000 + i, colours=COLOURS, shapes=("square", "rectangle", "circle"))


def pct_box(box, w, h) -> dict:
    x0, y0, x1, y1 = box
    return {"x": 100 * x0 / w, "y": 100 * y0 / h, "width": 100 * (x1 - x0) / w, "height": 100 * (y1 - y0) / h, "rotation": 0}


def new_id(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))


@dataclass
class Annotated:
    result: list[dict]
    expected: Counter  # (label, outcome) -> n, what the annotator did


def annotate(prediction: dict, sc: Scene, rng: random.Random) -> Annotated:
    """The simulated annotator's policy, and its own count of what it did to each region."""
    out: list[dict] = []
    did: Counter = Counter()
    for r in prediction["result"]:
        assert r["type"] == "rectanglelabels"
        label = r["value"]["rectanglelabels"][0]
        box = rect_to_box(r["value"], sc.width, sc.height)
        obj = max(sc.objects, key=lambda o: box_iou(o.box, box))
        wanted = WANTED[obj.colour] if box_iou(obj.box, box) >= 0.3 else None
        if wanted is None or label == "Yellow":  # made up, yellow, or called "Yellow": deleted
            did[(label, "deleted")] += 1
            continue
        value = dict(r["value"])
        moved = False
        if wanted == "Blue":  # shift by 10 % of the width (leftwards near the right edge)
            step = 0.1 * value["width"] * (1 if value["x"] + 1.1 * value["width"] <= 100 else -1)
            value["x"] += step
            moved = True
        elif box_iou(obj.box, box) < 0.97:  # jittered by the model: snapped to the object
            value.update(pct_box(obj.box, sc.width, sc.height))
            moved = True
        value["rectanglelabels"] = [wanted]
        if wanted != label:
            did[(label, "relabelled")] += 1
            did[(wanted, "relabelled_in")] += 1
        else:
            did[(label, "adjusted" if moved else "accepted")] += 1
        out.append({k: r[k] for k in ("id", "from_name", "to_name", "type", "original_width", "original_height")} | {"value": value})
    for obj in sc.matching("green"):
        out.append({"id": new_id(rng), "from_name": "rect", "to_name": "image", "type": "rectanglelabels",
                    "original_width": sc.width, "original_height": sc.height,
                    "value": {**pct_box(obj.box, sc.width, sc.height), "rectanglelabels": ["Leaf"]}})
        did[("Leaf", "missed")] += 1
    return Annotated(out, did)


def run_cli(ls, *args: str, extra_env: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "GEMINI_", "GOOGLE_", "REDIS_"))}
    env.update(LABEL_STUDIO_URL=ls.url, LABEL_STUDIO_API_KEY=ls.api_key, **(extra_env or {}))
    done = subprocess.run([str(GEMINI_LS_BIN), *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_report(ls, project: int, *extra: str) -> str:
    return run_cli(ls, "report", "--project", str(project), *extra)


def counts_of_report(report: dict, version: str) -> Counter:
    labels = report["model_versions"][version]["labels"]
    return Counter({(label, f): v[f] for label, v in labels.items() if label != "all"
                    for f in ("accepted", "adjusted", "relabelled", "deleted", "missed", "relabelled_in") if v[f]})


def counts_of_metrics(backend, project: int, version: str) -> Counter:
    out: Counter = Counter()
    for (name, labels), v in backend.metrics().items():
        d = dict(labels)
        if name == "gemini_ls_review_regions" and d["project"] == str(project) and d["model_version"] == version and v:
            out[(d["label"], d["outcome"])] += int(v)
    return out


def settled(backend, project: int, version: str, annotations: int, timeout: float = 60) -> Counter:
    """The ledger's counts once it holds `annotations` annotations (Label Studio gives a webhook 1 s,
    our handler may still be finishing the last ones) and two reads agree."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if backend.metric("gemini_ls_review_annotations", project=str(project), model_version=version) == annotations:
            now = counts_of_metrics(backend, project, version)
            if now == last:
                return now
            last = now
        time.sleep(0.5)
    return counts_of_metrics(backend, project, version)


@pytest.mark.timeout(1800)  # ~330 annotations, each a Label Studio write plus two webhook round trips
def test_review_loop(label_studio, emulator_factory, cors_images, redis_url, redis_prefix, tmp_path):
    ls = label_studio
    emu = emulator_factory()
    emu.mistakes = MISTAKES
    # WRITE_BACK=false: every task of a Retrieve comes back in the /predict answer (what this test
    # measures); the one-click write-back has its own tests (test_jobs_*.py).
    env = backend_env(emu.url, ls, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, WRITE_BACK="false",
                      REVIEW_LEARN="thresholds,synonyms", REVIEW_LEARN_MIN_SAMPLES="8")
    backend = start_backend_process("review-a", env)
    rng = random.Random(14)

    project = ls.create_project("review loop", CONFIG)["id"]
    scenes = {}
    tasks = []
    for i in range(N_FIRST + N_NEXT):
        sc = scene(i)
        tasks.append({"image": cors_images.add(f"review/{i}.png", encode_image(sc.image, "png"), "image/png"), "n": i})
        scenes[i] = sc
    first_ids = ls.import_tasks(project, tasks[:N_FIRST])
    scene_of = {t["id"]: scenes[t["data"]["n"]] for t in ls.tasks(project)}
    ml = ls.connect_ml_backend(project, backend.url, title="gemini")
    v1 = ml["model_version"]
    # the webhook a user configures (Label Studio also made one for the ML backend: every event comes twice)
    hook = ls.post("/api/webhooks", {"project": project, "url": backend.url + "/webhook", "send_payload": True,
                                     "send_for_all_actions": False,
                                     "actions": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]})
    assert hook["id"] and len(ls.get(f"/api/webhooks?project={project}")) == 2

    for i in range(0, N_FIRST, 50):
        ls.retrieve_predictions(project, first_ids[i : i + 50])
    predictions = {}
    for tid in first_ids:
        (pred,) = [p for p in ls.predictions(tid) if p["model_version"] == v1]
        predictions[tid] = pred

    expected: Counter = Counter()
    half = N_FIRST // 2
    ann_ids: dict[int, int] = {}

    def submit(tid: int, k: int) -> None:
        a = annotate(predictions[tid], scene_of[tid], rng)
        body = {"result": a.result, "lead_time": 5.0}
        if k % 2 == 0:
            body["parent_prediction"] = predictions[tid]["id"]
        if k % 20 == 0:  # a first draft (everything accepted), then the update with the real work
            draft = ls.post(f"/api/tasks/{tid}/annotations", {"result": [
                {k2: r[k2] for k2 in ("id", "from_name", "to_name", "type", "original_width", "original_height", "value")}
                for r in predictions[tid]["result"]]})
            ls.patch(f"/api/annotations/{draft['id']}", body)
            ann_ids[tid] = draft["id"]
        else:
            ann_ids[tid] = ls.post(f"/api/tasks/{tid}/annotations", body)["id"]
        if k % 25 == 3:  # a second annotator's throw-away annotation, deleted again
            extra = ls.post(f"/api/tasks/{tid}/annotations", {"result": []})
            ls.delete(f"/api/annotations/{extra['id']}")
        expected.update(a.expected)

    for k, tid in enumerate(first_ids[:half]):
        submit(tid, k)
    # restart between prediction and annotation: a new process on the same URL, same Redis
    backend.stop()
    backend = start_backend_process("review-b", env, port=backend.port)
    for k, tid in enumerate(first_ids[half:], start=half):
        submit(tid, k)
    # replays of Label Studio's own bodies count once
    for tid in first_ids[:10]:
        ann = ls.get(f"/api/annotations/{ann_ids[tid]}")
        for action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            r = requests.post(backend.url + "/webhook", json={
                "action": action, "annotation": ann, "task": {"id": tid, "project": project}, "project": {"id": project}}, timeout=30)
            assert r.status_code == 200, r.text

    expected = +expected
    assert expected[("Yellow", "deleted")] > 0 and expected[("Purple", "relabelled")] > 0
    assert expected[("Blue", "adjusted")] > 0 and expected[("Leaf", "missed")] > 0
    webhook_counts = settled(backend, project, v1, N_FIRST)
    report = json.loads(run_report(ls, project, "--format", "json", "--model-version", v1))
    assert counts_of_report(report, v1) == expected
    assert webhook_counts == expected
    assert report["model_versions"][v1]["annotations"] == N_FIRST
    assert backend.metric("gemini_ls_review_annotations", project=str(project), model_version=v1) == N_FIRST
    first_rate = report["model_versions"][v1]["deletion_rate"]

    # learning on: the next 100 tasks are predicted under the learned state's model_version
    next_ids = ls.import_tasks(project, tasks[N_FIRST:])
    scene_of.update({t["id"]: scenes[t["data"]["n"]] for t in ls.tasks(project) if t["id"] in next_ids})
    for i in range(0, N_NEXT, 50):
        ls.retrieve_predictions(project, next_ids[i : i + 50])
    (v2,) = {p["model_version"] for tid in next_ids for p in ls.predictions(tid)}
    assert v2.startswith(v1 + "-l") and v2 != v1, (v1, v2)
    expected2: Counter = Counter()
    for tid in next_ids:
        (pred,) = [p for p in ls.predictions(tid) if p["model_version"] == v2]
        predictions[tid] = pred
        a = annotate(pred, scene_of[tid], rng)
        ls.post(f"/api/tasks/{tid}/annotations", {"result": a.result})
        expected2.update(a.expected)
    expected2 = +expected2
    report = json.loads(run_report(ls, project, "--format", "json"))
    assert counts_of_report(report, v2) == expected2 == settled(backend, project, v2, N_NEXT)
    assert counts_of_report(report, v1) == expected  # the first 200 are still as they were
    second_rate = report["model_versions"][v2]["deletion_rate"]
    table = run_report(ls, project, "-o", str(tmp_path / "review.png"))
    print(table)
    print(f"deletion rate: {100 * first_rate:.1f} % under {v1}, {100 * second_rate:.1f} % under {v2} (learned)")
    assert first_rate > 0.15
    assert second_rate < 0.05
    assert expected2[("Purple", "relabelled")] == 0 and expected2[("Magenta", "accepted")] > 0  # the learned synonym

    assert f"model_version {v2}: {N_NEXT} annotations, deletion rate {100 * second_rate:.1f} %" in table
    assert (tmp_path / "review.png").stat().st_size > 10_000
    from tests.fixtures.labelstudio import ARTIFACTS, ROOT

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "review.png", ARTIFACTS / "review-report.png")
    (ARTIFACTS / "review-report.md").write_text(table)

    # evaluate: two variants on annotated tasks as ground truth, nothing written to Label Studio
    before = {tid: (len(ls.predictions(tid)), ls.get(f"/api/tasks/{tid}")["total_annotations"]) for tid in first_ids[:40]}
    evaluated = run_cli(ls, "evaluate", "--project", str(project), "--limit", "40",
                        "--variant", "name=as-is", "--variant", "name=strict,score_threshold=0.7",
                        extra_env={"GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": "emulator-key", "FETCH_ALLOWLIST": "127.0.0.1"})
    print(evaluated)
    after = {tid: (len(ls.predictions(tid)), ls.get(f"/api/tasks/{tid}")["total_annotations"]) for tid in first_ids[:40]}
    assert after == before
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in evaluated.splitlines() if line.startswith("| ")]
    rows = {c[0]: c[1:] for c in cells}
    assert rows["label"][:6] == ["as-is P", "as-is R", "as-is IoU", "strict P", "strict R", "strict IoU"]
    assert float(rows["all"][3]) > float(rows["all"][0])  # the threshold removes the low-confidence false positives
    assert rows["as-is"][1] == "40" and rows["strict"][1] == "40" and float(rows["as-is"][3]) > 0  # tasks, input tokens/task
    if DOCS:
        shutil.copy(tmp_path / "review.png", ROOT / "docs" / "review-report.png")
        (ROOT / "docs" / "review-report.md").write_text(table)
        (ROOT / "docs" / "evaluate.md").write_text(evaluated)
    backend.stop()
