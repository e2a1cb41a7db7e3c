"""Using a running compose stack the way the README tells users to: Label Studio on its published
port, the ML backend connected by its service name, "Retrieve predictions" from the Data Manager.

The Label Studio REST client and the project/checks are the e2e suite's (tests/fixtures/labelstudio.py,
tests/e2e/project.py); only where Label Studio runs differs.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.e2e.project import Project, check_stored, make_project
from tests.fixtures.labelstudio import LabelStudio

from .podman import COMPOSE_FILE, OVERRIDE_FILE, ComposeError, ComposeProject, Images, published_ports


def profile_services(compose_file: Path, profiles: tuple[str, ...]) -> tuple[str, ...]:
    """The services `--profile ...` starts: those without profiles and those in one of them."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    return tuple(sorted(n for n, s in services.items() if not s.get("profiles") or set(s["profiles"]) & set(profiles)))


# The offline profile as the README runs it. gemini-ls (no key, no GEMINI_EMULATOR: "NOT_CONFIGURED") is not asked
# for predictions here, but it must come up healthy like every other service.
OFFLINE_SERVICES = profile_services(COMPOSE_FILE, ("offline",))
# What the README tells users to enter under Settings > Model with the offline profile.
OFFLINE_BACKEND_URL = "http://gemini-ls-offline:9090"
REDIS_PREFIX = "gemini-ls:"  # the backend's default REDIS_PREFIX; the compose file does not set one
EMULATOR_KEY = "emulator-key"  # gemini-ls-offline's GEMINI_API_KEY in the compose file


def label_studio(project: ComposeProject) -> LabelStudio:
    """A REST client for the stack's Label Studio, logged in with the compose file's first user."""
    v = project.variables
    port = int(v["LABEL_STUDIO_PORT"])
    return LabelStudio(
        url=f"http://{v['BIND_ADDRESS']}:{port}", port=port, legacy=True, data_dir=Path("/label-studio/data"),
        home=Path("/label-studio"), log_path=project.log, process=None,  # type: ignore[arg-type]  # not ours: a container
        start_seconds=0.0, api_key=v["LABEL_STUDIO_API_KEY"], email=v["LABEL_STUDIO_USERNAME"], password=v["LABEL_STUDIO_PASSWORD"],
    )


@dataclass(frozen=True)
class Retrieval:
    project: Project
    reply: dict
    stored: dict[int, list[dict]]  # task id -> its predictions of our model version
    model_version: str


def retrieve_predictions(stack: ComposeProject, title: str, backend_url: str = OFFLINE_BACKEND_URL, n_tasks: int = 3) -> Retrieval:
    """Create a project of uploaded images, connect the backend by URL, run "Retrieve predictions"."""
    ls = label_studio(stack)
    # Uploads only: Label Studio stores them in its volume and the backend downloads them from
    # http://label-studio:8080/data/upload/... with the compose token (a host URL is unreachable).
    project = make_project(ls, None, backend_url, title, n_upload=n_tasks, n_url=0, broken=False)
    model_version = project.ml["model_version"]
    reply = ls.retrieve_predictions(project.id)
    stored = {tid: [p for p in ls.predictions(tid) if p["model_version"] == model_version] for tid in project.tasks}
    return Retrieval(project, reply, stored, model_version)


def check_retrieval(stack: ComposeProject, got: Retrieval) -> None:
    """Every task got one prediction matching its scene (the e2e checks)."""
    ls = label_studio(stack)
    assert got.reply["detail"] == f"Retrieved {len(got.project.tasks)} predictions", got.reply
    for task in got.project.good():
        check_stored(ls, task, got.model_version)


def cached_file_refs(stack: ComposeProject) -> dict[str, dict]:
    """The backend's Files API URI cache as stored in the compose stack's own Redis: key -> FileRef."""
    keys = stack.exec("redis", "redis-cli", "--scan", "--pattern", f"{REDIS_PREFIX}file:*").split()
    return {key: json.loads(stack.exec("redis", "redis-cli", "GET", key)) for key in keys}


def psql(stack: ComposeProject, sql: str) -> list[list[str]]:
    """Rows of one query, run by psql inside the stack's postgres container as the compose role."""
    v = stack.variables
    out = stack.exec("postgres", "psql", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                     "-U", v["POSTGRES_USER"], "-d", v["POSTGRES_DB"], "-c", sql)
    return [line.split("\t") for line in out.splitlines() if line]


def label_studio_rows(stack: ComposeProject, got: Retrieval) -> dict[str, object]:
    """What Label Studio's own tables in the compose PostgreSQL hold for the retrieval's project."""
    pid = int(got.project.id)
    task_ids = ",".join(str(int(t)) for t in got.project.tasks)
    return {
        "project": psql(stack, f"SELECT id, title FROM project WHERE id = {pid}"),
        "tasks": {int(r[0]) for r in psql(stack, f"SELECT id FROM task WHERE project_id = {pid}")},
        "predictions": {int(r[0]): int(r[1]) for r in psql(
            stack, f"SELECT task_id, count(*) FROM prediction WHERE task_id IN ({task_ids}) "
                   f"AND model_version = '{got.model_version.replace(chr(39), chr(39) * 2)}' GROUP BY task_id")},
    }


def _emulator_get(stack: ComposeProject, path: str) -> dict:
    """GET on the Gemini emulator container from inside it (its port is not published)."""
    code = ("import sys, urllib.request as u; r = u.Request('http://127.0.0.1:8765' + sys.argv[1], "
            "headers={'x-goog-api-key': sys.argv[2]}); print(u.urlopen(r, timeout=10).read().decode())")
    out = stack.exec("gemini-emulator", "python", "-c", code, path, EMULATOR_KEY)
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise ComposeError(f"emulator {path}: {out[:500]}") from exc


def emulator_counters(stack: ComposeProject) -> dict:
    """The emulator container's request counters (/_emulator/counters)."""
    return _emulator_get(stack, "/_emulator/counters")


def emulator_files(stack: ComposeProject) -> set[str]:
    """Names of the files uploaded to the emulator container's Files API (files.list)."""
    return {f["name"] for f in _emulator_get(stack, "/v1beta/files?pageSize=100").get("files", [])}


def user_settings() -> dict[str, str]:
    """What the README tells users to change before anything but a local demo, changed."""
    return {
        "LABEL_STUDIO_USERNAME": "owner@example.org",
        "LABEL_STUDIO_PASSWORD": secrets.token_urlsafe(16),
        "LABEL_STUDIO_API_KEY": secrets.token_hex(20),  # Label Studio's legacy token: at most 40 characters
        # Label Studio's database role, password and database: not the defaults either, so the test
        # proves both services take them from the same variables.
        "POSTGRES_USER": "ls_owner",
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "POSTGRES_DB": "ls_compose",
    }


def start_project(name: str, images: Images, files: tuple[Path, Path] = (COMPOSE_FILE, OVERRIDE_FILE),
                  profiles: tuple[str, ...] = ("offline",)) -> ComposeProject:
    """A compose project of `files` (compose file, test override), ready for `up`."""
    variables = {**images.environment(), **published_ports(), **user_settings()}
    project = ComposeProject(f"{name}-{os.getpid()}", variables, *files, profiles=profiles)
    project.down()  # a leftover of a killed run under the same name
    return project
