"""Local Google Gemini emulator (`gemini-ls emulator`) and its synthetic scene generator.

`gemini_ls.emulator.scenes` draws images with known objects; `gemini_ls.emulator.server` serves
the Gemini REST API over HTTP and "sees" those objects by their pixels. Names are imported
lazily so `import gemini_ls.emulator.scenes` stays light.
"""

from __future__ import annotations

from .keys import DEFAULT_API_KEY

__all__ = ["DEFAULT_API_KEY", "EmulatorServer", "main"]


def __getattr__(name: str):
    if name in ("EmulatorServer", "main"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
