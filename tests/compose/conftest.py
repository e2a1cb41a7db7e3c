"""Fixtures of the compose suite: the local images (built once, cached) and the stack, up and down.

Missing podman, runc or debootstrap is a FAILURE with a clear message (`make test` installs them
through .ci/install-system-deps), never a skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .podman import COMPOSE_FILE, OVERRIDE_FILE, ComposeProject, Images, ensure_images, published_ports
from .stack import OFFLINE_SERVICES

REQUIRED_TOOLS = ("podman", "runc", "debootstrap")


@pytest.fixture(scope="session")
def compose_images() -> Images:
    missing = [tool for tool in REQUIRED_TOOLS if not shutil.which(tool)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run .ci/install-system-deps (or `make test`)", pytrace=False)
    images = ensure_images()
    print(f"compose images ready in {images.seconds:.1f} s: {images}")
    return images


def user_settings() -> dict[str, str]:
    """What the README tells users to change before anything but a local demo, changed."""
    return {
        "LABEL_STUDIO_USERNAME": "owner@example.org",
        "LABEL_STUDIO_PASSWORD": secrets.token_urlsafe(16),
        "LABEL_STUDIO_API_KEY": secrets.token_hex(20),  # Label Studio's legacy token: at most 40 characters
    }


def start_project(name: str, images: Images, files: tuple[Path, Path] = (COMPOSE_FILE, OVERRIDE_FILE),
                  profiles: tuple[str, ...] = ("offline",)) -> ComposeProject:
    """A compose project of `files` (compose file, test override), ready for `up`."""
    variables = {**images.environment(), **published_ports(), **user_settings()}
    project = ComposeProject(f"{name}-{os.getpid()}", variables, *files, profiles=profiles)
    project.down()  # a leftover of a killed run under the same name
    return project


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
