"""/health reports reachability from a background probe: it never waits on a slow check."""

import threading
import time

from gemini_ls.backend import BackgroundProbe


def test_value_is_returned_at_once_and_refreshed_in_the_background():
    release = threading.Event()
    calls = []

    def slow_check():
        calls.append(1)
        release.wait(5)
        return True

    probe = BackgroundProbe(slow_check, interval=60)
    started = time.monotonic()
    assert probe.value() is None  # nothing known yet, and no waiting for the slow check
    assert probe.value() is None
    assert time.monotonic() - started < 0.5
    release.set()
    for _ in range(100):
        if probe.value() is True:
            break
        time.sleep(0.01)
    assert probe.value() is True
    assert len(calls) == 1  # one probe per interval, however often /health is called


def test_a_failing_check_reads_as_unreachable():
    def broken():
        raise ConnectionError("down")

    probe = BackgroundProbe(broken, interval=0)
    probe.value()
    for _ in range(100):
        if probe.value() is False:
            break
        time.sleep(0.01)
    assert probe.value() is False
