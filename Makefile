# Caucus: the two set-up commands are `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: serve test lint deps dev-deps browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.deps: pyproject.toml setup.py sfu/_fastpath_build.py | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-deps: pyproject.toml setup.py sfu/_fastpath_build.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.deps

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error

deps: $(VENV)/.deps web/node_modules/.package-lock.json
dev-deps: $(VENV)/.dev-deps web/node_modules/.package-lock.json

## make serve: install and start a server (SQLite, self-signed TLS) on https://127.0.0.1:8443/
serve: deps
	$(BIN)/caucus serve

## Debian's chromium drives the browser tests (Playwright cannot download its own here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make test: lint, then every test (SQLite; PostgreSQL too when CAUCUS_TEST_DATABASE_URL is set)
test: dev-deps browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)
