"""The test suite's process-group bookkeeping (tests/fixtures/processes.py): a group whose leader
died first is still found and stopped, so no child survives a test or the session."""

from __future__ import annotations

import subprocess
import time

from tests.fixtures.processes import group_alive, register, stop_group, survivors


def test_a_group_whose_leader_died_is_found_and_stopped():
    # the leader exits at once, its child (same group) runs on: what a SIGKILLed `serve` leaves
    proc = subprocess.Popen(["sh", "-c", "sleep 120 & exit 0"], start_new_session=True)
    register(proc, "orphaned sleep")
    proc.wait(timeout=10)
    time.sleep(0.2)
    assert group_alive(proc.pid)
    assert survivors() == {proc.pid: "orphaned sleep"}
    stop_group(proc.pid, proc, grace=1.0)
    assert not group_alive(proc.pid) and proc.pid not in survivors()


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period():
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 120 & wait"], start_new_session=True)
    register(proc, "stubborn sleep")
    time.sleep(0.2)
    started = time.monotonic()
    stop_group(proc.pid, proc, grace=0.5)
    assert not group_alive(proc.pid)
    assert time.monotonic() - started < 10
