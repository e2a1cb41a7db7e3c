"""`python -m tests.compose.prebuild`: the compose suite's images, built ahead of its tests.

`make test` starts this in the background right after the system packages are in, so the first
build on a fresh machine (~15 minutes: debootstrap, then Label Studio's and the backend's pip
installs) overlaps the virtualenvs, lint and the other test directories; pytest runs tests/compose
last (tests/fixtures/phases.py), and its fixture finds the images built, or waits on the build lock
(`ensure_images` holds it while building). A failure here only ends this process: the fixture checks
the network and builds again, so the same error fails a compose test with its message.
"""

from __future__ import annotations

import sys
import time

from .podman import ComposeError, check_container_network, ensure_images


def main() -> int:
    started = time.monotonic()
    try:
        print(f"container network works ({check_container_network():.1f} s)", flush=True)
        images = ensure_images()
    except ComposeError as exc:
        print(f"compose prebuild failed after {time.monotonic() - started:.0f} s:\n{exc}", file=sys.stderr)
        return 1
    print(f"compose images ready in {images.seconds:.1f} s: {images}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
