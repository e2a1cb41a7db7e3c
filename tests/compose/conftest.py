"""Fixtures of the compose suite: the local images (built once, cached) and the stack, up and down.

Missing podman, runc or debootstrap is a FAILURE with a clear message (`make test` installs them
through .ci/install-system-deps), never a skip; so is a container network that does not work,
found by one tiny `podman run --network` before any image is built.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.fixtures.phases import record_phase

from .podman import ComposeError, ComposeProject, Images, check_container_network, ensure_images
from .stack import OFFLINE_SERVICES, start_project

REQUIRED_TOOLS = ("podman", "runc", "debootstrap")


@pytest.fixture(scope="session")
def compose_images() -> Images:
    missing = [tool for tool in REQUIRED_TOOLS if not shutil.which(tool)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run .ci/install-system-deps (or `make test`)", pytrace=False)
    try:
        probe_seconds = check_container_network()
    except ComposeError as exc:
        pytest.fail(str(exc), pytrace=False)
    print(f"container network works ({probe_seconds:.1f} s)")
    images = ensure_images()
    # Usually built by `make test`'s background prebuild (tests/compose/prebuild.py) by now: this is
    # what the compose tests still waited (the lock) or built themselves.
    record_phase("compose images: left to wait or build in pytest", images.seconds)
    print(f"compose images ready in {images.seconds:.1f} s: {images}")
    return images


@pytest.fixture(scope="module")
def offline_stack(compose_images) -> Iterator[ComposeProject]:
    """`podman-compose --profile offline up -d` of the real compose file; `down -v` afterwards."""
    project = start_project("gemini-ls-compose", compose_images)
    try:
        project.up()
        project.healthy_after = project.wait_healthy(OFFLINE_SERVICES)
        yield project
    finally:
        project.down()
