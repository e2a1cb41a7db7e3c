"""Label Studio's visual-question-answering template (read from the installed package): created in the
real Label Studio 1.23.2, tasks imported as the template expects (an image and its questions q1..q4),
"Retrieve predictions", and every stored answer checked against the scene it is about, validated
with Label Studio's `LabelInterface.validate_prediction`; one task's 1 MB question fails that task
only. The emulator answers from the pixels (colours, counts, shapes, presence).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import Scene, encode_image, make_scene
from tests.fixtures.labelstudio import ARTIFACTS, ROOT

from .helpers import Chromium, backend_env, start_backend_process
from .prelabel import predictions_by_task, prelabel_env, run_prelabel
from .templates import template_config
from .test_ocr_template import PAGE_TEXT_JS
from .test_screenshot import IMAGE_READY_JS, chromium  # noqa: F401  (chromium: the fixture)

pytestmark = pytest.mark.e2e

DOCS_SCREENSHOT = ROOT / "docs" / "screenshot-vqa-template.png"
# (scene objects, seed, {question key: (question, the answer its pixels give)})
TASKS = [
    (["red square", "blue circle", "blue circle", "green triangle"], 31, {
        "q1": ("How many blue circles are there?", "2"),
        "q2": ("What colour is the square?", "red"),
        "q3": ("Is there a yellow triangle?", "no"),
        "q4": ("What shape is the green object?", "triangle"),
    }),
    (["yellow circle", "red square", "red square", "purple rectangle"], 32, {
        "q1": ("How many red squares are there?", "2"),
        "q2": ("What color is the circle?", "yellow"),
        "q3": ("Is there a purple rectangle?", "yes"),
    }),  # q4 blank (Label Studio wants every key of the config): not asked, three answers
]
HUGE = "Is there anything here? " * 45_000  # ~1 MB


@dataclass
class VqaTask:
    task_id: int
    scene: Scene | None
    expected: dict[str, tuple[str, str]]
    image: str


@dataclass
class VqaProject:
    ls: object
    id: int
    config: str
    tasks: list[VqaTask]
    predictions: dict[int, list[dict]]  # task id -> our stored predictions


def vqa_config() -> str:
    config = template_config("computer-vision", "visual-question-answering")
    assert '<TextArea name="answer1" toName="q1"' in config and '<Text name="q1" value="$q1"/>' in config, config
    return config


def import_vqa_tasks(ls, images, title: str) -> tuple[int, list[VqaTask]]:
    """A project of the template with TASKS and one task whose q1 is ~1 MB (Label Studio wants every
    key the config names: a question a task does not ask is blank)."""
    pid = ls.create_project(title, vqa_config())["id"]
    slug = "".join(c if c.isalnum() else "-" for c in title.lower())
    rows, truth = [], []
    for i, (names, seed, questions) in enumerate(TASKS):
        scene = make_scene(640, 480, names=names, seed=seed)
        url = images.add(f"{slug}/scene-{i}.png", encode_image(scene.image, "png"), "image/png")
        rows.append({"image": url, **{f"q{n}": "" for n in range(1, 5)}, **{key: q for key, (q, _) in questions.items()}})
        truth.append((scene, questions))
    url = images.add(f"{slug}/huge.png", encode_image(make_scene(320, 240, 2, seed=9).image, "png"), "image/png")
    rows.append({"image": url, "q1": HUGE, "q2": "How many circles are there?", "q3": "", "q4": ""})
    truth.append((None, {}))
    ids = ls.import_tasks(pid, rows)
    return pid, [VqaTask(tid, scene, questions, row["image"]) for tid, row, (scene, questions) in zip(ids, rows, truth)]


def check_answers(config: str, task: VqaTask, predictions: list[dict]) -> None:
    """One prediction whose answers are those the task's scene gives, each beside its question."""
    (prediction,) = predictions
    result = prediction["result"]
    assert LabelInterface(config).validate_prediction({"result": result}, return_errors=True) == []
    answers = {r["from_name"]: r for r in result}
    assert set(answers) == {f"answer{key[1:]}" for key in task.expected}, answers
    for key, (_question, answer) in task.expected.items():
        region = answers[f"answer{key[1:]}"]
        assert region["type"] == "textarea" and region["to_name"] == key, region  # beside its question
        assert region["value"]["text"] == [answer], (key, region["value"])


@pytest.fixture(scope="module")
def vqa(label_studio, gemini_emulator, cors_images):
    pid, tasks = import_vqa_tasks(label_studio, cors_images, "VQA template")
    backend = start_backend_process("vqa-template", backend_env(gemini_emulator.url, label_studio))
    try:
        ml = label_studio.connect_ml_backend(pid, backend.url, title="gemini")
        reply = label_studio.retrieve_predictions(pid, [t.task_id for t in tasks])
        assert reply["detail"] == f"Retrieved {len(tasks)} predictions", reply  # processed; the huge one stores none
        log = backend.log_path.read_text()
    finally:
        backend.stop()
    assert "1,080,000 characters, above the 4,000 a question may have" in log, log[-3000:]
    version = ml["model_version"]
    stored = {t.task_id: [p for p in label_studio.predictions(t.task_id) if p["model_version"] == version] for t in tasks}
    return VqaProject(label_studio, pid, vqa_config(), tasks, stored)


def test_each_question_gets_the_answer_its_image_gives(vqa):
    for task in (t for t in vqa.tasks if t.scene is not None):
        check_answers(vqa.config, task, vqa.predictions[task.task_id])


def test_batch_mode_gives_the_same_answers_and_the_same_per_task_error(label_studio, cors_images, emulator_factory,
                                                                       redis_url, redis_prefix):
    """`gemini-ls prelabel --batch`: a question a task leaves blank is neither sent nor waited for, the
    1 MB question fails its task with the same reason, the others are written."""
    emu = emulator_factory()
    emu.batches.configure(pending_seconds=0.2)
    pid, tasks = import_vqa_tasks(label_studio, cors_images, "VQA batch")
    done = run_prelabel(prelabel_env(emu.url, label_studio, redis_url, redis_prefix), pid, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]  # one task failed
    assert f"{len(TASKS)} of {len(tasks)} task(s) written" in done.stderr, done.stderr[-3000:]
    assert "1,080,000 characters, above the 4,000 a question may have" in done.stderr, done.stderr[-3000:]
    # one request per task with a question, all its questions in it; the 1 MB one is not sent
    assert emu.counters()["requests"]["batch.generateContent"] == len(TASKS)
    stored = predictions_by_task(label_studio, pid)
    for task in tasks:
        if task.scene is None:
            assert stored[task.task_id] == []
        else:
            check_answers(vqa_config(), task, stored[task.task_id])


def test_a_one_megabyte_question_costs_only_its_task(vqa):
    (huge,) = [t for t in vqa.tasks if t.scene is None]
    assert vqa.predictions[huge.task_id] == []


@pytest.mark.usefixtures("chromium")  # fails, naming what to install, without Chromium
def test_the_editor_shows_each_answer_beside_its_question(vqa):
    ls = vqa.ls
    task = vqa.tasks[0]
    with Chromium(width=1400, height=1150, log_path=ARTIFACTS / "chromedriver-vqa.log") as b:
        b.login_label_studio(ls.url, ls.email, ls.password)
        b.navigate(f"{ls.url}/projects/{vqa.id}/data?task={task.task_id}")
        b.wait_for(IMAGE_READY_JS % task.image.rsplit("/", 1)[-1], timeout=45)
        question, answer = task.expected["q4"]
        b.wait_for(f"(() => {{ const t = {PAGE_TEXT_JS}; return t.includes({question!r}) && t.includes({answer!r}); }})()",
                   timeout=30)
        time.sleep(1.5)  # let the canvas finish drawing before the picture
        path = b.screenshot(ARTIFACTS / "labeling-vqa-template.png")
        page = b.evaluate(PAGE_TEXT_JS)
    for question, answer in task.expected.values():
        assert question in page and answer in page, (question, answer, page[-1500:])
    assert path.stat().st_size > 20_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":  # refreshed on request only
        shutil.copyfile(path, DOCS_SCREENSHOT)
