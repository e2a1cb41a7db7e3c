"""IMAGE_FETCH_TIMEOUT is a wall clock from connect to the last byte (issue 11, case 4).

A socket read timeout is no such clock: a server that answers `HTTP/1.1 200 OK` and then one header
line every 0.5 s never lets a single read wait long, so before the fix it held a pool thread for
as long as it liked (30 s here), past IMAGE_FETCH_TIMEOUT and past PREDICT_TIMEOUT.
"""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faults.common import assert_good, check_contract, good_task, predict, url_task

TRICKLE_SECONDS = 30.0
LINE_EVERY = 0.5


class _Trickle(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(5)
        try:
            self.request.recv(65536)  # the GET
            self.request.sendall(b"HTTP/1.1 200 OK\r\n")
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < TRICKLE_SECONDS and not self.server.stopping.is_set():
                time.sleep(LINE_EVERY)
                n += 1
                self.request.sendall(f"X-Trickle-{n}: {'y' * 20}\r\n".encode())
                self.server.lines += 1
        except OSError:
            pass  # the client hung up: what we want


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Trickle)
        self.stopping = threading.Event()
        self.lines = 0


@pytest.fixture
def header_trickler() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


def test_header_trickle_is_cut_at_image_fetch_timeout(backend_factory, emu, header_trickler, gemini_logs):
    backend = backend_factory(IMAGE_FETCH_TIMEOUT="4", PREDICT_TIMEOUT="20")
    url = f"http://127.0.0.1:{header_trickler.server_address[1]}/slow-headers.png"
    started = time.monotonic()
    bad, good = predict(backend, [url_task(1, url), good_task(2)])
    elapsed = time.monotonic() - started
    assert elapsed < 6.0, f"/predict took {elapsed:.1f} s with IMAGE_FETCH_TIMEOUT=4"
    check_contract(backend, gemini_logs, bad, 1, "image_timeout", "IMAGE_FETCH_TIMEOUT=4")
    assert_good(good, 2)
    time.sleep(2 * LINE_EVERY)
    lines = header_trickler.lines
    assert lines <= 4 / LINE_EVERY + 2, f"the server could send {lines} header lines"
    time.sleep(2 * LINE_EVERY)
    assert header_trickler.lines == lines, "the connection stayed open after the timeout"

