"""axe-core for the accessibility checks, fetched from the npm registry at test time (`npm pack`,
the ordinary client) into a cache dir, never committed: a clean clone gets it on its first run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

VERSION = "axe-core@4"
CACHE = Path(os.environ.get("AXE_CACHE", Path.home() / ".cache" / "gemini-ls-tests" / "axe-core"))

# Runs axe in the page and hands back the serious and critical violations (id, impact, nodes).
RUN_JS = """const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
  .filter(v => v.impact === 'serious' || v.impact === 'critical')
  .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))))
  .catch(e => done({error: String(e)}));"""


def axe_source() -> str:
    """axe.min.js of the newest axe-core 4.x (cached)."""
    js = CACHE / "package" / "axe.min.js"
    if not js.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise AssertionError("npm not found: the accessibility check fetches axe-core with `npm pack` (apt-get install npm)")
        CACHE.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([npm, "pack", VERSION, "--pack-destination", str(CACHE)], capture_output=True, text=True, timeout=300,
                             cwd=CACHE)
        if out.returncode != 0:
            raise AssertionError(f"npm pack {VERSION} failed: {out.stderr[-2000:]}")
        tgz = CACHE / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tgz) as archive:
            member = archive.getmember("package/axe.min.js")
            archive.extractall(CACHE, members=[member])
    return js.read_text()
