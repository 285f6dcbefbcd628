# Parley's entry points. `make run` starts a local instance; `make test` is the full check that
# CI runs (formatting, lint, types, tests against real PostgreSQL, Redis and nginx).
#
# Test services listen on ports 55432 (PostgreSQL) and 56379 (Redis); scripts/test-services.sh
# reads PARLEY_SERVICES_DIR, PARLEY_TEST_PGPORT and PARLEY_TEST_REDIS_PORT to move them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := scripts/test-services.sh
PYTEST_ARGS ?=
BENCH_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help run test lint typecheck widget widget-check web web-check web-api screenshots services-start \
	services-stop bench clean

help:
	@echo "make run             run Parley locally (embedded PostgreSQL and Redis, API, worker)"
	@echo "make test            formatting, lint, type check and tests, with test services"
	@echo "make lint            ruff format --check and ruff check"
	@echo "make typecheck       mypy (strict)"
	@echo "make widget          build the chat widget (widget/dist/widget.js)"
	@echo "make widget-check    the widget's type check, unit tests, build and size budget"
	@echo "make web             build the dashboard (web/dist, served at /app)"
	@echo "make web-check       the dashboard's type check, unit tests, build and size budget"
	@echo "make web-api         regenerate the dashboard's typed API client from the OpenAPI schema"
	@echo "make screenshots     PNGs of the dashboard's main pages in docs/screenshots/"
	@echo "make services-start  install and start the test PostgreSQL and Redis; prints their URLs"
	@echo "make services-stop   stop them and delete their data"
	@echo "make bench           run the benchmarks against the test services"
	@echo "make clean           remove the virtualenv and caches (keeps .data)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Parley needs Python 3.11 or newer as $(PYTHON)" >&2; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "could not create $(VENV): on Debian/Ubuntu install python3-venv" >&2; exit 1; }

# pip runs only when pyproject.toml is newer than the last install; the stamps remember it.
$(VENV)/.installed-run: pyproject.toml scripts/install-model.sh | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	scripts/install-model.sh $(VENV)
	@touch $@

$(VENV)/.installed-dev: pyproject.toml scripts/install-model.sh | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	scripts/install-model.sh $(VENV)
	@touch $@ $(VENV)/.installed-run

# The widget: npm ci runs when the lock file changes, the build when a source does.
WIDGET_SOURCES := $(shell find widget/src widget/scripts -type f 2>/dev/null) \
	widget/package.json widget/vite.config.ts widget/tsconfig.json

widget/node_modules/.installed: widget/package.json widget/package-lock.json
	cd widget && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

widget/dist/widget.js: widget/node_modules/.installed $(WIDGET_SOURCES)
	cd widget && npm run --silent build

widget: widget/dist/widget.js

widget-check: widget/node_modules/.installed
	cd widget && npm run --silent check

# The dashboard, the same way.
WEB_SOURCES := $(shell find web/src web/public web/scripts -type f 2>/dev/null) \
	web/package.json web/vite.config.ts web/tsconfig.json web/index.html

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

web/dist/index.html: web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run --silent build

web: web/dist/index.html

web-check: web/node_modules/.installed
	cd web && npm run --silent check

# The schema comes from create_app() itself: no server, no database.
web-api: $(VENV)/.installed-dev web/node_modules/.installed
	@mkdir -p build
	PARLEY_LOG_JSON=false $(BIN)/python -m backend.dashboard.openapi > build/openapi.json
	cd web && npm run --silent api

run: $(VENV)/.installed-run widget/dist/widget.js web/dist/index.html
	$(BIN)/parley run

# The services are stopped whatever happens (failure, Ctrl-C); the first failing step's exit
# code is make's.
test: $(VENV)/.installed-dev widget-check web-check
	$(SERVICES) install
	$(SERVICES) with bash -c 'set -e; \
		echo "ruff format --check"; $(BIN)/ruff format --check .; \
		echo "ruff check"; $(BIN)/ruff check .; \
		echo "mypy"; $(BIN)/mypy; \
		echo "pytest"; $(BIN)/pytest $(PYTEST_ARGS)'

# The dashboard's main pages in Chromium, against a real Parley with test services.
screenshots: $(VENV)/.installed-dev widget/dist/widget.js web/dist/index.html
	$(SERVICES) install
	$(SERVICES) with $(BIN)/pytest -q -p no:cacheprovider tests/browser/screenshots.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

services-start:
	@$(SERVICES) install
	@$(SERVICES) start

services-stop:
	@$(SERVICES) stop

bench: $(VENV)/.installed-dev
	$(SERVICES) install
	$(SERVICES) with $(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist widget/node_modules widget/dist \
		web/node_modules web/dist
	find . -path ./.data -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
