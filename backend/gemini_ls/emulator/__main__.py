"""`python -m gemini_ls.emulator [--host H] [--port N] [--latency S[+-J]]`."""

from .server import main

raise SystemExit(main())
