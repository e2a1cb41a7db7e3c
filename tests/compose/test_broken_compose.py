"""The compose suite catches a broken compose file: a copy with one service renamed fails.

The rename is one that every static check accepts (the Compose schema, `docker compose config`,
tests/compose/test_compose_file.py's semantics): `gemini-emulator` becomes `gemini-emulator-v2`
together with the `depends_on` entry naming it (and the test override's entry, which names
services too), so the file stays valid and the whole stack comes up healthy, but the offline
backend's GEMINI_BASE_URL (http://gemini-emulator:8765) names a host that no longer exists. Only
bringing the stack up and asking for predictions shows it: Label Studio stores none, and the
backend logs that the name does not resolve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .podman import BUILD_TIMEOUT, COMPOSE_FILE, OVERRIDE_FILE, ComposeError
from .stack import OFFLINE_SERVICES, check_retrieval, retrieve_predictions, start_project

# First run: the images are built inside the first test (debootstrap, pip): far above the 600 s default.
pytestmark = [pytest.mark.compose, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT + 1200)]

OLD, NEW = "gemini-emulator", "gemini-emulator-v2"


def renamed_service_copy(tmp_path) -> tuple[Path, Path]:
    """Copies of the compose file and of the test override with the service renamed in both (the
    override names services too; left alone it would add a service of its own)."""
    copies = []
    for source, expected in ((COMPOSE_FILE, 2), (OVERRIDE_FILE, 1)):
        # "  <name>:" lines: the service key, and in the compose file its depends_on entry.
        text, n = re.subn(rf"^(\s+){OLD}:$", rf"\g<1>{NEW}:", source.read_text(), flags=re.M)
        assert n == expected, f"{source.name}: renamed {n} '{OLD}:' keys, expected {expected}"
        services = yaml.safe_load(text)["services"]
        assert NEW in services and OLD not in services
        path = tmp_path / source.name
        path.write_text(text)
        copies.append(path)
    services = yaml.safe_load(copies[0].read_text())["services"]
    assert services["gemini-ls-offline"]["depends_on"][NEW] == {"condition": "service_healthy"}
    assert services["gemini-ls-offline"]["environment"]["GEMINI_BASE_URL"] == f"http://{OLD}:8765"
    return copies[0], copies[1]


def test_a_renamed_service_fails_the_prediction_check(compose_images, tmp_path):
    project = start_project("gemini-ls-compose-broken", compose_images, renamed_service_copy(tmp_path))
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
        # ... because the emulator's name does not resolve on the compose network.
        assert re.search(r"task \d+ failed \(gemini_connection\): could not reach Gemini: .*Name or service not known", backend_log), (
            backend_log[-2000:]
        )
    except ComposeError as exc:
        pytest.fail(f"the broken copy must come up (only the prediction check may fail): {exc}")
    finally:
        project.down()
    assert project.volumes() == []
