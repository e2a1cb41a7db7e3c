"""The compose suite catches a broken compose file: a copy with one service renamed fails.

The rename is one that every static check accepts (the Compose schema, `docker compose config`,
tests/compose/test_compose_file.py's semantics): `gemini-emulator` becomes `gemini-emulator-v2`
together with the `depends_on` entry naming it, so the file stays valid and the whole stack comes up
healthy, but the offline backend's GEMINI_BASE_URL (http://gemini-emulator:8765) names a host that
no longer exists. Only bringing the stack up and asking for predictions shows it: Label Studio
stores none.
"""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import start_project
from .podman import BUILD_TIMEOUT, COMPOSE_FILE, ComposeError
from .stack import OFFLINE_SERVICES, check_retrieval, retrieve_predictions

# First run: the images are built inside the first test (debootstrap, pip): far above the 600 s default.
pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT + 1200)]

OLD, NEW = "gemini-emulator", "gemini-emulator-v2"


def renamed_service_copy(tmp_path):
    text = COMPOSE_FILE.read_text()
    # The service key and the depends_on key: both are "  <name>:" lines at their indentation.
    broken, n = re.subn(rf"^(\s+){OLD}:$", rf"\g<1>{NEW}:", text, flags=re.M)
    assert n == 2, f"expected the service and one depends_on entry named {OLD}, renamed {n}"
    services = yaml.safe_load(broken)["services"]
    assert NEW in services and OLD not in services
    assert services["gemini-ls-offline"]["environment"]["GEMINI_BASE_URL"] == f"http://{OLD}:8765"
    path = tmp_path / "docker-compose.yml"
    path.write_text(broken)
    return path


def test_a_renamed_service_fails_the_prediction_check(compose_images, tmp_path):
    project = start_project("gemini-ls-compose-broken", compose_images, compose_file=renamed_service_copy(tmp_path))
    try:
        project.up()
        # Still a valid file: every service, the renamed one included, comes up healthy.
        project.wait_healthy([NEW if s == OLD else s for s in OFFLINE_SERVICES])
        got = retrieve_predictions(project, "compose broken", n_tasks=1)
        # What the real suite asserts fails here, and for the reason we broke.
        with pytest.raises(AssertionError):
            check_retrieval(project, got)
        assert all(preds == [] for preds in got.stored.values()), got.stored
        backend_log = project.logs("gemini-ls-offline", tail=400)
        assert OLD in backend_log, backend_log[-2000:]
    except ComposeError as exc:
        pytest.fail(f"the broken copy must come up (only the prediction check may fail): {exc}")
    finally:
        project.down()
    assert project.volumes() == []
