"""Fixtures for the end-to-end suite: real Label Studio (tests/fixtures/labelstudio.py), our backend
run as `gemini-ls serve` in a subprocess, the Gemini emulator, and a CORS image server.

Everything binds to 127.0.0.1. Logs of every process land in artifacts/e2e/ so a failed CI run
can be read afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .helpers import EMULATOR_KEY, BackendProcess, CorsImageServer, start_backend_process


def pytest_collection_modifyitems(items):
    # Every test under tests/e2e/ is an e2e test, even one that forgot the marker.
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cors_images() -> Iterator[CorsImageServer]:
    server = CorsImageServer()
    yield server
    server.stop()


def _start_emulator(**kw):
    from gemini_ls.emulator.server import EmulatorServer

    return EmulatorServer(host="127.0.0.1", port=0, api_keys={EMULATOR_KEY}, **kw).start()


@pytest.fixture(scope="session")
def gemini_emulator():
    """One emulator for the session (no latency, no faults)."""
    emu = _start_emulator()
    yield emu
    emu.stop()


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., object]]:
    """Private emulators for tests that change latency or faults."""
    started = []

    def start(**kw):
        emu = _start_emulator(**kw)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def backend_factory_e2e() -> Iterator[Callable[..., BackendProcess]]:
    """start(name, env) -> a running `gemini-ls serve` subprocess; all are stopped after the test."""
    started: list[BackendProcess] = []

    def start(name: str, env: dict[str, str]) -> BackendProcess:
        bp = start_backend_process(name, env)
        started.append(bp)
        return bp

    yield start
    for bp in started:
        bp.stop()
