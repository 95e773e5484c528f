# The two commands a newcomer needs are `make demo` and `make test`; both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP_VERSION := 25.3
UV_VERSION := 0.13.9
SERVICES := ingest trainer scorer monitor registry-gateway
PYTEST_TIERS ?= tests

.PHONY: help setup up down demo status test test-unit test-integration lint contracts lock bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

# The stamp is newer than the lock and every pyproject once the venv holds exactly the lock.
# Reinstalling the workspace's own (editable) packages refreshes their metadata: entry points, scripts.
$(VENV)/.synced: $(BIN)/python requirements.lock libs/fraudops/pyproject.toml $(wildcard libs/fraudops/src/fraudops/*/*.c) \
  $(wildcard services/*/pyproject.toml)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION) uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock \
	  $(foreach p,fraudops $(addprefix fraudops-,$(SERVICES)),--reinstall-package $(p))
	@touch $@

TOOLS := .tools
CHECKOV := $(TOOLS)/checkov/bin/checkov

# checkov pins old packaging/botocore versions that clash with the workspace, so it lives in its own venv.
$(CHECKOV): infrastructure/tools/checkov.lock $(VENV)/.synced
	test -x $(TOOLS)/checkov/bin/python || $(PYTHON) -m venv $(TOOLS)/checkov
	$(BIN)/uv pip sync --quiet --python $(TOOLS)/checkov/bin/python infrastructure/tools/checkov.lock
	@touch $@

# actionlint (the workflow linter) is a Go program: built once from the Go module proxy, pinned by version.
ACTIONLINT := $(TOOLS)/bin/actionlint
ACTIONLINT_VERSION := v1.7.12
$(ACTIONLINT):
	@command -v go >/dev/null || { echo "Go 1.22+ is needed to build actionlint, the workflow linter: install Go"; exit 1; }
	GOBIN=$(abspath $(TOOLS)/bin) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# Airflow 3 pins FastAPI/SQLAlchemy versions the services do not use, so it lives in its own venv too.
AIRFLOW_VENV := $(TOOLS)/airflow
$(AIRFLOW_VENV)/.synced: infrastructure/airflow/requirements.lock $(VENV)/.synced
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(AIRFLOW_VENV)/bin/python infrastructure/airflow/requirements.lock
	@touch $@

.PHONY: airflow-setup airflow
airflow-setup: $(AIRFLOW_VENV)/.synced ## Create Airflow 3's own virtualenv (.tools/airflow) from its pinned lock

airflow: setup ## Start the local stack with Airflow 3 (airflow standalone) on 127.0.0.1
	$(BIN)/fraudops up --with-airflow

setup: $(VENV)/.synced $(CHECKOV) $(ACTIONLINT) $(AIRFLOW_VENV)/.synced ## Create .venv from requirements.lock, the tool venvs and tools, fetch Kafka's jars
	$(BIN)/fraudops setup

up: setup ## Start the local stack (Kafka, MLflow, the five services) on 127.0.0.1
	$(BIN)/fraudops up

down: ## Stop the local stack
	@if [ -x $(BIN)/fraudops ]; then $(BIN)/fraudops down; fi

# DEMO_ARGS passes options through, e.g. `make demo DEMO_ARGS="--small --no-airflow"`.
demo: setup ## The whole lifecycle on the local stack (started or reused): dataset, champion, stream, drift, retraining
	$(BIN)/fraudops demo $(DEMO_ARGS)

status: setup ## Show each part of the local stack and its health
	$(BIN)/fraudops status

lint: $(VENV)/.synced ## ruff (lint and format) and mypy over every package and the tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/fraudops/src $(foreach s,$(SERVICES),services/$(s)/src) tests bench

contracts: $(VENV)/.synced ## Regenerate contracts/openapi/*.json from the apps
	$(BIN)/fraudops contracts generate

.PHONY: config-reference
config-reference: $(VENV)/.synced ## Regenerate docs/configuration.md (every environment variable) from the settings classes
	$(BIN)/fraudops config-reference

lock: $(BIN)/python ## Re-resolve requirements.in into requirements.lock and each service's subset
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION) uv==$(UV_VERSION)
	bash infrastructure/lock.sh $(BIN)/uv
	$(BIN)/uv pip compile --quiet --python-version 3.11 --generate-hashes infrastructure/tools/checkov.in -o infrastructure/tools/checkov.lock
	$(BIN)/uv pip compile --quiet --python-version 3.11 --python-platform linux --generate-hashes \
	  infrastructure/airflow/requirements.in -o infrastructure/airflow/requirements.lock

test: setup lint ## Lint, then the whole suite: unit, integration, e2e, reliability (real Kafka, Postgres, MLflow)
	$(BIN)/python -m pytest $(PYTEST_TIERS)

test-unit: $(VENV)/.synced $(CHECKOV) $(ACTIONLINT) $(AIRFLOW_VENV)/.synced ## Only the tests that need no services
	$(BIN)/python -m pytest tests/unit

bench: setup ## Run every benchmark; each measures its baseline in the same run
	$(BIN)/python -m bench

.PHONY: compose-env
compose-env: ## Write .env (settings) and .secrets/ (a file per random secret) for docker compose; kept, never printed
	bash infrastructure/compose/make-env.sh
