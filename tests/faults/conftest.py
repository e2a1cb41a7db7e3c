"""Fault-matrix fixtures: the loopback-only network fence (tests/faults/fence.py) and shared helpers' fixtures.

`net_fence` (autouse) turns the fence on for every test here: a connect to anything but
127.0.0.0/8 or ::1, or a DNS lookup of a name that is not a loopback name, is refused and recorded.
A test then asserts on what was refused, e.g. that the SSRF guard rejected 169.254.169.254 without
even trying to connect. At the end of every test the fence fails the test if anything tried to
leave the machine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from .fence import FENCE, Fence, install


@pytest.fixture(autouse=True)
def net_fence() -> Iterator[Fence]:
    install()
    FENCE.reset()
    FENCE.active = True
    try:
        yield FENCE
    finally:
        FENCE.active = False
    # A test that expects a refusal reads and clears FENCE.refused itself.
    leftover = FENCE.targets()
    FENCE.reset()
    assert not leftover, f"something tried to leave the machine: {leftover}"


@pytest.fixture
def gemini_logs(caplog) -> pytest.LogCaptureFixture:
    """caplog at INFO for every gemini_ls logger (the backend's own records)."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="gemini_ls")
    return caplog
