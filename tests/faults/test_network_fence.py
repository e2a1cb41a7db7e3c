"""The loopback-only fence (fence.py) that the SSRF tests rely on really sees and refuses."""

from __future__ import annotations

import socket

import pytest

from tests.faults import fence


def test_fence_sees_every_connect(net_fence):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        server.close()
    assert ("127.0.0.1", port) in net_fence.seen


@pytest.mark.parametrize(
    "event, args",
    [
        ("socket.connect", (None, ("169.254.169.254", 80))),
        ("socket.connect", (None, ("10.0.0.1", 80))),
        ("socket.connect", (None, ("fd00:ec2::254", 80, 0, 0))),
        ("socket.getaddrinfo", ("metadata.google.internal", 80, 0, 0, 0)),
        ("socket.getaddrinfo", ("example.com", 443, 0, 0, 0)),
    ],
)
def test_fence_refuses_anything_off_the_machine(event, args, net_fence):
    # The hook itself is called: no socket is created, nothing leaves the machine.
    with pytest.raises(fence.NetworkFenceError):
        fence.hook(event, args)
    assert net_fence.targets()
    net_fence.reset()  # expected refusals: do not fail the test at teardown


@pytest.mark.parametrize(
    "event, args",
    [
        ("socket.connect", (None, ("127.0.0.1", 80))),
        ("socket.connect", (None, ("::1", 80, 0, 0))),
        ("socket.connect", (None, "/tmp/some.sock")),
        ("socket.getaddrinfo", ("localhost", 80, 0, 0, 0)),
        ("socket.getaddrinfo", ("127.0.0.1", 80, 0, 0, 0)),
        ("socket.getaddrinfo", ("169.254.169.254", 80, 0, 0, 0)),  # numeric: no lookup; connect is checked
    ],
)
def test_fence_lets_loopback_through(event, args, net_fence):
    fence.hook(event, args)
    assert net_fence.targets() == []
