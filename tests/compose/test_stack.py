"""`docker compose --profile offline up` for real (podman-compose on podman), used as the README says.

One module-scoped stack: the real docker-compose.yml plus tests/compose/compose.override.yml (image
sources only), brought up once, its healthchecks passed, Label Studio connected to the backend by
its service name, "Retrieve predictions" run through Label Studio's API, and torn down with its
volumes at the end. Tests run in file order.
"""

from __future__ import annotations

import pytest

from .podman import BUILD_TIMEOUT
from .stack import (
    OFFLINE_BACKEND_URL,
    OFFLINE_SERVICES,
    cached_file_refs,
    check_retrieval,
    emulator_counters,
    emulator_files,
    label_studio,
    label_studio_rows,
    psql,
    retrieve_predictions,
)

# First run: the images are built inside the first test (debootstrap, pip): far above the 600 s default.
pytestmark = [pytest.mark.compose, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT + 1200)]


@pytest.fixture(scope="module")
def retrieval(offline_stack):
    return retrieve_predictions(offline_stack, "compose offline")


def test_every_service_of_the_offline_profile_is_up_and_healthy(offline_stack):
    assert {"redis", "postgres", "label-studio", "gemini-ls", "gemini-emulator", "gemini-ls-offline"} <= set(OFFLINE_SERVICES)
    assert offline_stack.services() == set(OFFLINE_SERVICES)
    assert set(offline_stack.healthy_after) == set(OFFLINE_SERVICES)
    print(f"seconds until healthy: {offline_stack.healthy_after}")
    # The first user and token are the ones given through the compose variables, not the defaults.
    ls = label_studio(offline_stack)
    me = ls.get("/api/current-user/whoami")
    assert me["email"] == offline_stack.variables["LABEL_STUDIO_USERNAME"]
    ls.login_session()  # the password works too


def test_label_studio_connects_the_backend_by_its_service_name(offline_stack, retrieval):
    ml = label_studio(offline_stack).get(f"/api/ml/{retrieval.project.ml['id']}")
    assert ml["url"] == OFFLINE_BACKEND_URL
    assert ml["state"] == "CO", ml
    assert ml["error_message"] in (None, ""), ml
    assert retrieval.model_version and ml["model_version"] == retrieval.model_version


def test_retrieve_predictions_stores_a_prediction_per_task(offline_stack, retrieval):
    assert all(len(preds) == 1 for preds in retrieval.stored.values()), retrieval.stored
    check_retrieval(offline_stack, retrieval)


def test_label_studio_keeps_its_data_in_the_compose_postgres(offline_stack, retrieval):
    rows = label_studio_rows(offline_stack, retrieval)
    title = label_studio(offline_stack).get(f"/api/projects/{retrieval.project.id}")["title"]
    # The project, its tasks and the predictions "Retrieve predictions" stored are rows of
    # PostgreSQL, read by psql inside the postgres container as the compose file's role.
    assert rows["project"] == [[str(retrieval.project.id), title]], rows
    assert rows["tasks"] == set(retrieval.project.tasks), rows
    assert rows["predictions"] == {tid: len(preds) for tid, preds in retrieval.stored.items()}, rows
    assert set(rows["predictions"].values()) == {1}, rows
    # ... in the database the variables named, and Label Studio made no SQLite database beside it.
    assert psql(offline_stack, "SELECT current_user, current_database()") == [
        [offline_stack.variables["POSTGRES_USER"], offline_stack.variables["POSTGRES_DB"]]]
    data = offline_stack.exec("label-studio", "python3", "-c", "import os; print(sorted(os.listdir('/label-studio/data')))")
    assert "sqlite" not in data, data


def test_the_offline_backend_asked_the_emulator_container(offline_stack, retrieval):
    counters = emulator_counters(offline_stack)
    # Four controls per task: several requests per image, so images went up through the Files API.
    assert counters["requests"].get("generateContent", 0) >= len(retrieval.project.tasks), counters
    assert counters["uploads"] >= len(retrieval.project.tasks), counters
    assert set(counters["statuses"]) == {"200"}, counters  # no error answered, no retry needed


def test_the_backends_uri_cache_is_the_compose_redis(offline_stack, retrieval):
    refs = cached_file_refs(offline_stack)
    # Every file the emulator container holds was remembered in the compose Redis, once.
    uploaded = emulator_files(offline_stack)
    assert uploaded and {ref["name"] for ref in refs.values()} == uploaded, (refs, uploaded)
    assert len(refs) == len(uploaded) == emulator_counters(offline_stack)["uploads"]


def test_down_removes_containers_network_and_volumes(offline_stack):
    assert {v.rsplit("_", 1)[-1] for v in offline_stack.volumes()} == {"label-studio-data", "postgres-data", "redis-data"}, (
        offline_stack.volumes())
    assert offline_stack.networks(), "no compose network"
    offline_stack.down()
    assert offline_stack.containers() == []
    assert offline_stack.volumes() == []
    assert offline_stack.networks() == []
