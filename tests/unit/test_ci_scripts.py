"""The CI scripts' own contracts: .ci/install-system-deps names what it could not install, and
.ci/timed records a phase. Run as real processes (bash), with a stand-in `apt-get` on PATH so no
package is touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / ".ci" / "install-system-deps"


def _bin_dir(tmp_path: Path) -> Path:
    """A PATH holding only the tools the script itself uses, and an apt-get that installs nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "grep", "id", "dpkg-query", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/apt-get.calls\nexit 0\n')
    (bin_dir / "apt-get").chmod(0o755)
    return bin_dir


def test_a_package_still_missing_after_install_fails_naming_it(tmp_path):
    bin_dir = _bin_dir(tmp_path)
    env = {"PATH": str(bin_dir), "PYTHON": sys.executable, "HOME": str(tmp_path)}
    if os.geteuid() != 0:
        (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
        (bin_dir / "sudo").chmod(0o755)
    out = subprocess.run(["bash", str(INSTALL)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out
    calls = (tmp_path / "apt-get.calls").read_text()
    assert "update" in calls and "install -y -qq" in calls and "redis-server" in calls and "chromium-driver" in calls
    # Every package the stand-in did not install is named, with the check that failed.
    # (those whose check looks on PATH only; others are also found by absolute path on a machine that has them)
    for package in ("redis-server", "chromium-driver", "podman"):
        assert f"Debian package '{package}' is missing or broken after apt-get install" in out.stderr, out.stderr
    assert "install-system-deps: FAILED:" in out.stderr
    assert "(check: has redis-server)" in out.stderr


def test_timed_records_the_phase_and_passes_the_status_through(tmp_path):
    phases = tmp_path / "phases.tsv"
    env = {**os.environ, "CI_PHASES": str(phases)}
    ok = subprocess.run([str(ROOT / ".ci" / "timed"), "quick one", "true"], env=env, capture_output=True, text=True, timeout=30)
    bad = subprocess.run([str(ROOT / ".ci" / "timed"), "failing one", "sh", "-c", "exit 3"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and bad.returncode == 3
    rows = [line.split("\t") for line in phases.read_text().splitlines()]
    assert [(r[0], r[2]) for r in rows] == [("quick one", "ok"), ("failing one", "exit 3")]
    assert all(float(r[1]) >= 0 for r in rows)
    table = subprocess.run([str(ROOT / ".ci" / "phases-table")], env=env, capture_output=True, text=True, timeout=30)
    assert "| quick one |" in table.stdout and "| failing one |" in table.stdout and "exit 3" in table.stdout
