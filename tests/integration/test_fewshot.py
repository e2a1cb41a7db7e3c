"""Few-shot through the real stack: webhooks fill the review ledger, /setup names the example set in
model_version, /predict sends the examples as prior turns over the real google-genai SDK to the
emulator (which records what reached the wire), example images through the Files API cache.

Label Studio's API (annotations, tasks, predictions) is served by a loopback HTTP server: the
backend reads it with its own HTTP client, exactly as it reads Label Studio."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY
from gemini_ls.emulator.wire import file_id_from_uri, get
from tests.fixtures.servers import Reply
from tests.helpers import config, rect_control, scene_rect_regions

CONFIG = config(rect_control())
PROJECT = "1.1700000000"


class FakeProject:
    """Annotated tasks as Label Studio's API serves them (GET only, what the backend reads)."""

    def __init__(self, server):
        self.server = server
        self.tasks: dict[int, dict] = {}
        self.annotations: dict[int, dict] = {}
        server.add_handler("/api/predictions", self._predictions)

    def _json(self, obj, status=200):
        return Reply(status, json.dumps(obj).encode(), "application/json")

    def _predictions(self, req):
        task = int(parse_qs(urlsplit(req.path).query)["task"][0])
        ann = next(a for a in self.annotations.values() if a["task"] == task)
        # our prediction was the annotator's answer: every region accepted
        return self._json([{"id": task, "task": task, "model_version": "gemini-ls-earlier", "result": ann["result"]}])

    def add(self, tid: int, image_url: str, result: list):
        self.tasks[tid] = {"id": tid, "data": {"image": image_url}, "project": 1}
        self.annotations[tid] = {"id": tid, "task": tid, "project": 1, "result": result}
        self.server.add_handler(f"/api/tasks/{tid}", lambda req, t=tid: self._json(self.tasks[t]))
        self.server.add_handler(f"/api/annotations/{tid}", lambda req, t=tid: self._json(self.annotations[t]))

    def webhook(self, backend, tid: int, action="ANNOTATION_CREATED"):
        r = backend.post("/webhook", {"action": action, "annotation": self.annotations[tid], "project": {"id": 1}})
        assert r.status_code == 200, r.text
        assert r.json().get("verdict"), r.json()


@pytest.fixture
def project(image_server):
    return FakeProject(image_server)


def start(backend_factory, image_server, k: int, **env):
    running = backend_factory(FEW_SHOT_EXAMPLES=str(k), LABEL_STUDIO_URL=image_server.base_url,
                              LABEL_STUDIO_API_KEY="0123456789abcdef0123456789abcdef01234567", GEMINI_FILES="auto",
                              WRITE_BACK="false", **env)
    running.backend.learner.refit_seconds = 0  # refit on every ledger change (the default waits 30 s)
    return running


def version_of(backend):
    r = backend.post("/setup", {"schema": CONFIG, "project": PROJECT})
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def file_uris(content):
    """The SDK may spell wire fields camelCase or snake_case (the emulator reads both)."""
    return [get(get(p, "fileData"), "fileUri") for p in content["parts"] if get(p, "fileData")]


def test_examples_reach_the_wire_as_cached_files_and_name_the_model_version(emu, image_server, project, backend_factory):
    example_scenes = [make_scene(640, 480, 4, seed=500 + i) for i in range(3)]
    for i, sc in enumerate(example_scenes, start=1):
        project.add(i, image_server.add(f"/ex{i}.png", encode_image(sc.image, "png")), scene_rect_regions(sc))
    task_scenes = [make_scene(640, 480, 4, seed=600 + i) for i in range(6)]
    tasks = [{"id": 100 + i, "data": {"image": image_server.add(f"/t{i}.png", encode_image(sc.image, "png"))}}
             for i, sc in enumerate(task_scenes)]
    backend = start(backend_factory, image_server, 3)
    plain = version_of(backend)
    assert "-e" not in plain.split("-p1-")[1]  # nothing reviewed yet: no example set
    for tid in (1, 2, 3):
        project.webhook(backend, tid)
    version = version_of(backend)
    assert version.startswith(plain + "-e") and len(version) == len(plain) + 10

    emu.record(50)
    r = backend.post("/predict", {"tasks": tasks, "label_config": CONFIG, "project": PROJECT})
    assert r.status_code == 200 and r.json()["model_version"] == version
    assert all(entry.get("result") for entry in r.json()["results"]), r.json()
    bodies = list(emu.recorded)
    assert len(bodies) == 6
    uris = set()
    for body in bodies:
        contents = body["contents"]
        assert [c["role"] for c in contents] == ["user", "model"] * 3 + ["user"]
        for user, model in zip(contents[0:6:2], contents[1:6:2]):
            (uri,) = file_uris(user)
            uris.add(uri)
            assert user["parts"][-1]["text"] == contents[-1]["parts"][-1]["text"]  # the task's own prompt
            answer = json.loads(model["parts"][0]["text"])
            assert answer and all(set(item) == {"box_2d", "label", "confidence"} for item in answer)
        assert not file_uris(contents[-1])  # the task image itself went inline (used once)
    assert len(uris) == 3 and emu.counters()["uploads"] == 3  # each example image uploaded once for 6 tasks
    # the answers are the annotators' regions, in the prompt's format
    shown = {item["label"] for body in bodies[:1] for c in body["contents"][1:6:2] for item in json.loads(c["parts"][0]["text"])}
    assert shown == {o.colour.capitalize() for sc in example_scenes for o in sc.objects}
    assert backend.metric("gemini_ls_few_shot_requests_total") == 6
    per_request = backend.metric("gemini_ls_few_shot_input_tokens_total") / 6
    assert per_request > 3 * 258  # three images and their prompts and answers

    # an annotator edits an example: a new example set, a new model_version
    edited = project.annotations[3]["result"]
    edited[0] = {**edited[0], "value": {**edited[0]["value"], "x": edited[0]["value"]["x"] + 1}}
    project.webhook(backend, 3, "ANNOTATION_UPDATED")
    changed = version_of(backend)
    assert changed != version and changed.startswith(plain + "-e")
    # predicting again under it reuses the cached example files
    r = backend.post("/predict", {"tasks": tasks[:2], "label_config": CONFIG, "project": PROJECT})
    assert all(entry.get("result") for entry in r.json()["results"])
    assert emu.counters()["uploads"] == 3


def test_an_example_whose_image_is_gone_is_left_out_and_no_task_fails(emu, image_server, project, backend_factory, caplog):
    caplog.set_level(logging.WARNING, logger="gemini_ls")
    good, gone = make_scene(640, 480, 3, seed=700), make_scene(640, 480, 3, seed=701)
    project.add(1, image_server.add("/good.png", encode_image(good.image, "png")), scene_rect_regions(good))
    project.add(2, image_server.add("/gone.png", b"", status=404), scene_rect_regions(gone))
    backend = start(backend_factory, image_server, 2)
    for tid in (1, 2):
        project.webhook(backend, tid)
    version = version_of(backend)
    assert "-e" in version.split("-p1-")[1]
    emu.record(10)
    scene = make_scene(640, 480, 4, seed=702)
    tasks = [{"id": 200 + i, "data": {"image": image_server.add(f"/u{i}.png", encode_image(scene.image, "png"))}} for i in range(2)]
    r = backend.post("/predict", {"tasks": tasks, "label_config": CONFIG, "project": PROJECT})
    assert all(entry.get("result") for entry in r.json()["results"]), r.json()
    assert [len(b["contents"]) for b in emu.recorded] == [3, 3]  # one example, then the task
    assert "example image of task 2 (annotation 2) left out" in caplog.text
    assert image_server.hits("/gone.png") >= 1


def test_few_shot_off_sends_the_plain_request(emu, image_server, project, backend_factory):
    sc = make_scene(640, 480, 3, seed=710)
    project.add(1, image_server.add("/a.png", encode_image(sc.image, "png")), scene_rect_regions(sc))
    backend = start(backend_factory, image_server, 0)
    project.webhook(backend, 1)
    plain = version_of(backend)
    assert "-e" not in plain.split("-p1-")[1]
    emu.record(5)
    r = backend.post("/predict", {"tasks": [{"id": 9, "data": {"image": image_server.url("/a.png")}}], "label_config": CONFIG,
                                  "project": PROJECT})
    assert r.json()["results"][0].get("result")
    assert [len(b["contents"]) for b in emu.recorded] == [1]


def test_examples_stay_within_the_token_budget_each_counted_once(emu, image_server, project, backend_factory, caplog):
    caplog.set_level(logging.INFO, logger="gemini_ls")
    for i in (1, 2, 3):
        sc = make_scene(640, 480, 3, seed=720 + i)
        project.add(i, image_server.add(f"/b{i}.png", encode_image(sc.image, "png")), scene_rect_regions(sc))
    backend = start(backend_factory, image_server, 3, FEW_SHOT_MAX_TOKENS="2000")  # room for one example
    for tid in (1, 2, 3):
        project.webhook(backend, tid)
    version_of(backend)
    emu.record(10)
    scene = make_scene(640, 480, 4, seed=730)
    tasks = [{"id": 300 + i, "data": {"image": image_server.add(f"/v{i}.png", encode_image(scene.image, "png"))}} for i in range(4)]
    r = backend.post("/predict", {"tasks": tasks, "label_config": CONFIG, "project": PROJECT})
    assert all(entry.get("result") for entry in r.json()["results"]), r.json()
    assert [len(b["contents"]) for b in emu.recorded] == [3] * 4
    assert "would pass FEW_SHOT_MAX_TOKENS=2000" in caplog.text
    assert emu.counters()["requests"]["countTokens"] == 3  # each example counted once, for all 4 tasks
    assert backend.metric("gemini_ls_few_shot_input_tokens_total") / 4 <= 2000


def test_an_example_task_is_not_shown_its_own_annotation(emu, image_server, project, backend_factory):
    urls, data = {}, {}
    for i in (1, 2):
        sc = make_scene(640, 480, 3, seed=740 + i)
        data[i] = encode_image(sc.image, "png")
        urls[i] = image_server.add(f"/s{i}.png", data[i])
        project.add(i, urls[i], scene_rect_regions(sc))
    backend = start(backend_factory, image_server, 2)
    for tid in (1, 2):
        project.webhook(backend, tid)
    version_of(backend)
    emu.record(5)
    # task 1 re-predicted (e.g. after a version change): only the other example goes with it
    r = backend.post("/predict", {"tasks": [{"id": 1, "data": {"image": urls[1]}}], "label_config": CONFIG, "project": PROJECT})
    assert r.json()["results"][0].get("result")
    (body,) = emu.recorded
    assert len(body["contents"]) == 3
    (uri,) = file_uris(body["contents"][0])
    assert emu.files.get(file_id_from_uri(uri), DEFAULT_API_KEY).data == data[2]  # the other task's image
