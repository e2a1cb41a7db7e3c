#!/usr/bin/env bash
# Install the real Label Studio server used by the e2e tests into its OWN virtualenv.
# Label Studio pins label-studio-sdk==2.1.2 exactly and redis<5.3, which clash with our
# runtime dependencies, so it never shares the project's .venv. Idempotent: re-running
# with the right version already installed does nothing.
set -euo pipefail

LS_VERSION="${LS_VERSION:-1.23.2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LS_VENV="${LS_VENV:-$ROOT/.ls-venv}"
PYTHON="${PYTHON:-python3}"

installed_version() {
  # Never run `label-studio --version`: it starts a server on 0.0.0.0.
  "$LS_VENV/bin/python" -c 'import label_studio; print(label_studio.__version__)' 2>/dev/null || true
}

if [ -x "$LS_VENV/bin/label-studio" ] && [ "$(installed_version)" = "$LS_VERSION" ]; then
  echo "label-studio $LS_VERSION already installed in $LS_VENV"
  exit 0
fi

if [ ! -x "$LS_VENV/bin/python" ]; then
  "$PYTHON" -m venv "$LS_VENV"
fi
"$LS_VENV/bin/python" -m pip install --quiet --upgrade pip
"$LS_VENV/bin/python" -m pip install --quiet "label-studio==$LS_VERSION"

got="$(installed_version)"
if [ "$got" != "$LS_VERSION" ]; then
  echo "label-studio install failed: expected $LS_VERSION, got '${got:-nothing}'" >&2
  exit 1
fi
echo "label-studio $got installed in $LS_VENV"
