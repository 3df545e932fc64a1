# Two entry points (README): `make repro` runs the DVC DAG, `make test` runs the tests.
# Both set up the virtualenv first, so they work on a fresh clone.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(abspath $(VENV)/bin)
# Offline mirror of the corpora; development machines and CI have it beside the project.
MIRROR_DEFAULT := $(abspath ../shared/corpora)
export RNNFLOW_MIRROR ?= $(if $(wildcard $(MIRROR_DEFAULT)),$(MIRROR_DEFAULT),)
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(abspath .prefect)
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export PATH := $(BIN):$(PATH)
# PROFILE=ci|gpu runs the DAG with profiles/$(PROFILE).yaml as a DVC experiment
# (`dvc exp run -S ...`); no PROFILE is the main job on params.yaml as committed.
PROFILE ?=

.PHONY: setup system repro lint test help

help:  ## list targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch range <2.14 takes the local CPU wheel; see pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed  ## create .venv and install rnnflow with its test extras

system:  ## Debian packages the tests use: chromium (headless UI check), when root and missing
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "note: /usr/bin/chromium missing (not root): the browser checks skip (fail under CI=true)"; fi

repro: setup  ## run the DVC DAG: the main job, or PROFILE=ci|gpu as a DVC experiment
	@git diff --quiet -- params.yaml 2>/dev/null || echo "note: params.yaml differs from the \
	last commit (your edits, or an experiment left applied); \`git checkout params.yaml\` \
	returns to the main job" >&2
# Both hold the workspace lock: while another run, profile or flow has it, refused at once.
	$(PY) -m pipelines.ops.prefect_session -- \
		$(if $(PROFILE),$(BIN)/rnnflow profile $(PROFILE) --exp-run,$(BIN)/rnnflow locked -- $(BIN)/dvc repro)
	@$(BIN)/dvc metrics show

# Every check runs (one failure does not hide the next); the target fails if any did.
lint: setup  ## ruff (lint, format check), mypy, import contracts (pyproject.toml); CI runs it first
	@status=0; \
	for check in "ruff check --no-cache ." "ruff format --check ." "mypy" "lint-imports --no-logo"; do \
		echo "+ $$check"; $(BIN)/$$check || status=1; \
	done; exit $$status

test: setup system lint  ## lint, then run the test suite
	$(BIN)/pytest -q
