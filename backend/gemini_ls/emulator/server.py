"""A local Gemini API emulator: a real HTTP server the google-genai SDK talks to unchanged.

    server = EmulatorServer(port=0).start()        # server.url -> "http://127.0.0.1:PORT"
    client = genai.Client(api_key=DEFAULT_API_KEY,
                          http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))

Routes: POST /{ver}/models/{model}:generateContent | :streamGenerateContent | :countTokens,
the resumable Files API (/upload/{ver}/files, /{ver}/files[/{id}]) and control endpoints under
/_emulator/ (no API key). See README.md beside this file.

The emulator's state and python-side control are state.py, its HTTP routes handler.py, its
generateContent answers generation.py; this module runs the server and its command line.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import faults as faults_mod
from . import mistakes as mistakes_mod
from .handler import EmulatorHTTPServer, Handler
from .keys import DEFAULT_API_KEY
from .state import FILE_TTL_SECONDS, EmulatorState


class EmulatorServer(EmulatorState):
    """The emulator: its state (state.py) served over HTTP (handler.py) on a thread of its own."""

    _httpd: EmulatorHTTPServer | None = None
    _thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        httpd = EmulatorHTTPServer((self.host, self.port), Handler)
        httpd.emulator = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, name=f"gemini-emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

# ----- CLI ------------------------------------------------------------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gemini-ls emulator", description="Local Gemini API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", default="0", help="SECONDS[+-JITTER] added to every generateContent")
    parser.add_argument("--api-key", action="append", default=[], help="extra accepted API key (repeatable)")
    parser.add_argument("--file-ttl", type=float, default=FILE_TTL_SECONDS, help="file lifetime in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mistakes", default="", help="e.g. false_positive=0.3;jitter=0.2;swap=0.05 (see mistakes.py)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        latency, jitter = faults_mod.parse_latency(args.latency)
    except ValueError:
        print(f"bad --latency {args.latency!r}: want SECONDS or SECONDS+-JITTER", file=sys.stderr)
        return 2
    server = EmulatorServer(
        args.host, args.port, api_keys=frozenset({DEFAULT_API_KEY, *args.api_key}), latency=latency,
        jitter=jitter, file_ttl_seconds=args.file_ttl, seed=args.seed, verbose=args.verbose,
    )
    server.mistakes = mistakes_mod.Mistakes.parse(args.mistakes) if args.mistakes else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"gemini-ls emulator listening on {server.url} (api key {DEFAULT_API_KEY!r})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
