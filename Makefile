# gemini-ls developer entry points. The README's two set-up commands:
#   make serve   virtualenv + package, then `gemini-ls serve` (no key: asks for the embedded Gemini emulator)
#   make test    system packages, virtualenvs (ours and Label Studio's), lint + types, then the whole pytest suite
# and two quick ones for while you work: `make unit` (tests/unit only) and `make lint` (ruff + mypy).
# Both are idempotent: installs are skipped while pyproject.toml is unchanged (stamp files keyed on
# its hash inside the virtualenv), so a second run goes straight to work.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        ?= .venv
LS_VENV     ?= .ls-venv
LS_VERSION  ?= 1.23.2
PYTEST_ARGS ?=
SERVE_ARGS  ?=

PROJECT_HASH := $(shell sha256sum pyproject.toml | cut -c1-16)
RUN_STAMP    := $(VENV)/.installed-run-$(PROJECT_HASH)
TEST_STAMP   := $(VENV)/.installed-test-$(PROJECT_HASH)
VPY          := $(VENV)/bin/python

.PHONY: help serve test install install-test system-deps label-studio pytest unit lint

help:
	@echo "make serve         install (if needed) and run the backend: gemini-ls serve $(SERVE_ARGS)"
	@echo "make test          install everything the tests need (if needed) and run pytest over tests/"
	@echo "make install       $(VENV) with the package (pip install -e .)"
	@echo "make install-test  $(VENV) with the package and its test extras"
	@echo "make system-deps   apt-get install redis-server chromium chromium-driver podman runc debootstrap tesseract-ocr (...) when missing"
	@echo "make label-studio  Label Studio $(LS_VERSION) in its own virtualenv $(LS_VENV)"
	@echo "make pytest        run pytest only (PYTEST_ARGS=... to pass options)"
	@echo "make unit          the fast unit tests only (tests/unit): no Label Studio, no system packages installed"
	@echo "make lint          ruff check backend tests, then mypy (as configured in pyproject.toml)"

# A virtualenv whose interpreter is missing or broken is made anew (its stamps go with it). The checks
# run in the shell, not as make prerequisites, so a venv recreated in this very run is reinstalled.
define ensure_venv
if ! "$(VPY)" -c 'import sys' >/dev/null 2>&1; then \
  if [ -e "$(VENV)" ]; then echo "$(VENV) is broken: recreating"; rm -rf "$(VENV)"; fi; \
  echo "creating $(VENV)"; $(PYTHON) -m venv "$(VENV)"; \
  "$(VPY)" -m pip install --quiet --disable-pip-version-check --upgrade pip; \
fi
endef

install:
	@$(ensure_venv)
	@if [ -f "$(RUN_STAMP)" ] || [ -f "$(TEST_STAMP)" ]; then echo "$(VENV): up to date"; else \
	  echo "$(VENV): pip install -e ."; \
	  "$(VPY)" -m pip install --quiet --disable-pip-version-check -e .; \
	  rm -f "$(VENV)"/.installed-run-*; touch "$(RUN_STAMP)"; \
	fi

install-test:
	@$(ensure_venv)
	@if [ -f "$(TEST_STAMP)" ]; then echo "$(VENV): up to date (with test extras)"; else \
	  echo "$(VENV): pip install -e \".[test]\""; \
	  "$(VPY)" -m pip install --quiet --disable-pip-version-check -e ".[test]"; \
	  rm -f "$(VENV)"/.installed-run-* "$(VENV)"/.installed-test-*; touch "$(TEST_STAMP)" "$(RUN_STAMP)"; \
	fi

# No key in the environment: ask for the built-in emulator explicitly (GEMINI_EMULATOR=embedded), and
# say so; elsewhere a missing key is an error, never a silent stand-in for Gemini.
serve: install
	if [ -z "$${GEMINI_API_KEY:-}$${GOOGLE_API_KEY:-}" ] && [ -z "$${GEMINI_EMULATOR:-}" ]; then \
		echo "make serve: no GEMINI_API_KEY / GOOGLE_API_KEY set: running with GEMINI_EMULATOR=embedded (the built-in emulator, not Gemini)"; \
		export GEMINI_EMULATOR=embedded; \
	fi; \
	exec $(VENV)/bin/gemini-ls serve $(SERVE_ARGS)

system-deps:
	PYTHON=$(PYTHON) bash .ci/install-system-deps

# Label Studio pins label-studio-sdk and redis in ways that clash with ours: its own virtualenv.
# The e2e suite owns the installer when it exists; otherwise a plain pip install.
label-studio:
	@if [ -f tests/e2e/install_label_studio.sh ]; then \
	  LS_VERSION=$(LS_VERSION) LS_VENV="$(abspath $(LS_VENV))" PYTHON=$(PYTHON) bash tests/e2e/install_label_studio.sh; \
	elif [ -x "$(LS_VENV)/bin/python" ] && [ "$$($(LS_VENV)/bin/python -c 'import label_studio; print(label_studio.__version__)' 2>/dev/null)" = "$(LS_VERSION)" ]; then \
	  echo "label-studio $(LS_VERSION) already installed in $(LS_VENV)"; \
	else \
	  $(PYTHON) -m venv $(LS_VENV) && $(LS_VENV)/bin/pip install --quiet --disable-pip-version-check "label-studio==$(LS_VERSION)"; \
	fi

# pytest's exit status 5 means "no tests collected": a suite that ran nothing must not pass.
pytest: install-test
	@rc=0; $(VPY) -m pytest tests/ --durations=30 $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$rc

# Lint and types first: a tree that fails them is not worth the suite's minutes. Each phase is timed
# (.ci/timed) into $(CI_PHASES); pytest adds one row per test directory and the compose image builds
# (tests/fixtures/phases.py); the table is printed at the end (tests/README.md has today's figures).
CI_PHASES ?= $(abspath artifacts/ci/phases.tsv)
export CI_PHASES
test:
	@mkdir -p "$(dir $(CI_PHASES))"; rm -f "$(CI_PHASES)"
	@rc=0; prebuild=; { .ci/timed "system packages" $(MAKE) --no-print-directory system-deps \
	  && .ci/timed "virtualenv (ours)" $(MAKE) --no-print-directory install-test \
	  && { mkdir -p artifacts/compose; \
	       setsid .ci/timed "compose image builds (background, beside what follows)" $(VPY) -m tests.compose.prebuild \
	         > artifacts/compose/prebuild.log 2>&1 </dev/null & prebuild=$$!; \
	       echo "compose images: building in the background (pid $$prebuild, log artifacts/compose/prebuild.log)"; } \
	  && .ci/timed "Label Studio virtualenv" $(MAKE) --no-print-directory label-studio \
	  && .ci/timed "lint (ruff + mypy)" $(MAKE) --no-print-directory lint \
	  && .ci/timed "pytest (all)" $(MAKE) --no-print-directory pytest; } || rc=$$?; \
	if [ -n "$$prebuild" ] && kill -0 "$$prebuild" 2>/dev/null; then kill -- -"$$prebuild" 2>/dev/null || true; fi; \
	echo; echo "== CI phases"; .ci/phases-table; exit $$rc

# The quick loop: only our virtualenv, never apt-get or Label Studio. (Tests here that need Redis
# start the redis-server already on PATH, as everywhere in the suite.)
unit: install-test
	@rc=0; $(VPY) -m pytest tests/unit -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make unit: pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$rc

# The same tools and versions as .pre-commit-config.yaml: both use the virtualenv's ruff and mypy.
lint: install-test
	$(VENV)/bin/ruff check backend tests
	$(VENV)/bin/mypy
