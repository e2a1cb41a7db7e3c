"""The loopback-only network fence of the fault matrix (registered as the autouse `net_fence`
fixture in tests/faults/conftest.py).

Every outgoing socket connect and every name lookup of the test process is watched through
Python's audit hooks (PEP 578): a connect to anything but 127.0.0.0/8 or ::1, or a DNS lookup of a
name that is not a loopback name, is REFUSED (the hook raises before the socket call runs) and
recorded in FENCE, so a test can assert on what was refused.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from dataclasses import dataclass, field

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class NetworkFenceError(OSError):
    pass


def _is_loopback_host(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return True  # e.g. None (getaddrinfo with a port only) or a unix path
    text = host.strip("[]").split("%", 1)[0].lower().rstrip(".")
    if text in LOOPBACK_NAMES or text == "":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


@dataclass
class Fence:
    active: bool = False
    refused: list[tuple[str, str]] = field(default_factory=list)  # (event, target)
    seen: list[tuple[str, int]] = field(default_factory=list)  # every (host, port) connected to
    lock: threading.Lock = field(default_factory=threading.Lock)

    def targets(self) -> list[str]:
        with self.lock:
            return [t for _, t in self.refused]

    def reset(self) -> None:
        with self.lock:
            self.refused.clear()
            self.seen.clear()


FENCE = Fence()


def hook(event: str, args: tuple) -> None:
    if not FENCE.active:
        return
    if event == "socket.connect":
        _sock, address = args
        if isinstance(address, tuple) and len(address) >= 2:
            with FENCE.lock:
                FENCE.seen.append((str(address[0]), int(address[1])))
        if isinstance(address, tuple) and address and not _is_loopback_host(address[0]):
            with FENCE.lock:
                FENCE.refused.append((event, str(address[0])))
            raise NetworkFenceError(f"test network fence: connect to {address[0]} refused (loopback only)")
    elif event == "socket.getaddrinfo":
        host = args[0]
        if not _is_loopback_host(host):
            try:  # a numeric address is no lookup; the connect check covers it
                ipaddress.ip_address(str(host.decode() if isinstance(host, bytes) else host).strip("[]"))
                return
            except ValueError:
                pass
            with FENCE.lock:
                FENCE.refused.append((event, str(host)))
            raise NetworkFenceError(f"test network fence: DNS lookup of {host!r} refused (loopback only)")


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(hook)  # cannot be removed; it only acts while FENCE.active
        _installed = True
