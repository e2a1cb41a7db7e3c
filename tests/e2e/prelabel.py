"""`gemini-ls prelabel --batch` as a real subprocess against the real Label Studio, plus the project
it works on (tasks as CORS image URLs of synthetic scenes). Shared by the e2e tests and the batch
benchmark."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gemini_ls.emulator.scenes import encode_image, make_scene

from .helpers import GEMINI_LS_BIN
from .project import SCENE_SPECS

EMULATOR_KEY = "emulator-key"


def prelabel_env(emulator_url: str, ls, redis_url: str, redis_prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "LABEL_STUDIO_", "REDIS_"))}
    env.update(
        GEMINI_BASE_URL=emulator_url,
        GEMINI_API_KEY=EMULATOR_KEY,
        LABEL_STUDIO_URL=ls.url,
        LABEL_STUDIO_API_KEY=ls.api_key,
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
        FETCH_ALLOWLIST="127.0.0.1",
        GEMINI_BATCH_POLL_SECONDS="0.2",
        GEMINI_BATCH_POLL_MAX="1",
        GEMINI_MAX_RETRIES="2",
        PYTHONUNBUFFERED="1",
        HOME=tempfile.mkdtemp(prefix="e2e-prelabel-"),
    )
    env.update(extra)
    return env


def prelabel_cmd(project_id: int, *args: str) -> list[str]:
    return [str(GEMINI_LS_BIN), "prelabel", "--project", str(project_id), "--batch", *args]


def spawn_prelabel(env: dict[str, str], project_id: int, *args: str, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(prelabel_cmd(project_id, *args), env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def run_prelabel(env: dict[str, str], project_id: int, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(prelabel_cmd(project_id, *args), env=env, capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class BatchProject:
    id: int
    task_ids: tuple[int, ...]
    tasks: tuple[dict, ...]  # as Label Studio holds them: {"id", "data"}


def scene_images(n: int, *, small: bool = False) -> list[bytes]:
    out = []
    for i in range(n):
        (w, h), names, seed, fmt = SCENE_SPECS[i % len(SCENE_SPECS)]
        if small:
            w, h = w // 2, h // 2
        scene = make_scene(w, h, names=names, seed=seed + 100 * (i // len(SCENE_SPECS)))
        out.append(encode_image(scene.image, fmt))
    return out


def make_batch_project(ls, images, title: str, config: str, n: int, *, small: bool = False) -> BatchProject:
    """A project of `n` URL tasks, each a distinct synthetic scene served by the CORS image server."""
    slug = "".join(c if c.isalnum() else "-" for c in title.lower())
    pid = ls.create_project(title, config)["id"]
    data = []
    for i, body in enumerate(scene_images(n, small=small)):
        fmt = "png" if body.startswith(b"\x89PNG") else "jpeg"
        data.append({"image": images.add(f"{slug}/scene-{i}.{fmt}", body, f"image/{fmt}")})
    for start in range(0, n, 1000):
        ls.request("POST", f"/api/projects/{pid}/import", json=data[start : start + 1000], expect=201)
    tasks = sorted(ls.tasks(pid), key=lambda t: t["id"])
    assert len(tasks) == n
    return BatchProject(pid, tuple(t["id"] for t in tasks), tuple({"id": t["id"], "data": t["data"]} for t in tasks))


def predictions_by_task(ls, project_id: int, model_version: str | None = None) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for task in ls.tasks(project_id):
        preds = [p for p in task.get("predictions", []) if model_version is None or p.get("model_version") == model_version]
        out[task["id"]] = preds
    return out
