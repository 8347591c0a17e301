# Caucus: the two set-up commands are `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: serve test lint deps dev-deps browser sanitize weak-link

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

# $(call need,CHECK,DEBIAN PACKAGE): install the package unless the shell CHECK succeeds
need = $(1) >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(2) >/dev/null; }

## Debian's chromium drives the browser tests (Playwright cannot download its own here),
## Debian's firefox-esr the ones that run in Firefox too (over WebDriver BiDi, with
## puppeteer-core from web/); Debian's coturn is the TURN server of the relayed-media tests;
## fonts-dejavu-core is the Unicode font invoice and agreement PDFs embed; Debian's janus is
## the server the Janus client is tested against and bench/versus_janus.py compares with.
browser:
	@$(call need,command -v chromium,chromium)
	@$(call need,command -v firefox-esr,firefox-esr)
	@$(call need,command -v turnserver,coturn)
	@$(call need,test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf,fonts-dejavu-core)
	@$(call need,command -v janus,janus)

## make lint: style (ruff), the import layers (import-linter, contracts in pyproject.toml)
## and the types (mypy) of the packages
lint: dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

## Test processes side by side (pytest-xdist); each file's tests run in one of them, in order.
TEST_PROCESSES ?= 2

## make test: lint, then every test (SQLite; PostgreSQL too when CAUCUS_TEST_DATABASE_URL is set)
test: dev-deps browser lint
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile --durations=25 $(PYTEST_ARGS)

## make weak-link: the weak-network acceptance test alone, on real shaped links (root),
## with its figures (see tests/weaknet/test_simulcast_weak_link.py)
weak-link: dev-deps
	$(BIN)/python -m pytest -q -rA tests/weaknet/test_simulcast_weak_link.py

## make sanitize: the compiled media module built with AddressSanitizer and UBSan into
## build/sanitize (the source tree's module stays the normal build), then its tests and a
## bounded run of its fuzz targets with gcc's libasan preloaded.
SANITIZE_DIR := build/sanitize
SANITIZE_TESTS := tests/sfu/test_fastpath.py tests/sfu/test_direct_receive.py tests/sfu/test_native_producer.py tests/sfu/test_simulcast.py \
	tests/client/test_receive_poller.py tests/client/test_frames.py $(wildcard tests/hostile/test_native_*.py)
SANITIZE_FUZZ := $(wildcard tests/fuzz/fuzz_native_*.py)
FUZZ_SECONDS ?= 30
# CPython leaks by design (detect_leaks=0); PYTHONMALLOC=malloc gives every Python buffer
# handed to C its own heap block, so that ASan sees a read past it.
SANITIZE_ENV = LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 PYTHONMALLOC=malloc \
	PYTHONPATH=$(SANITIZE_DIR)

sanitize: dev-deps
	rm -rf $(SANITIZE_DIR)
	$(BIN)/python sfu/_fastpath_build.py --sanitize $(SANITIZE_DIR)
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install --quiet atheris
	env $(SANITIZE_ENV) $(BIN)/python -c "import sfu._fastpath as m, sys; \
	  sys.exit(None if '/$(SANITIZE_DIR)/' in m.__file__ else 'not the sanitizer build: ' + m.__file__)"
	env $(SANITIZE_ENV) $(BIN)/python -m pytest -p no:cacheprovider -q $(SANITIZE_TESTS)
	for target in $(SANITIZE_FUZZ); do \
	  name=$$(basename $$target .py); name=$${name#fuzz_}; \
	  mkdir -p $(SANITIZE_DIR)/corpus/$$name; \
	  env $(SANITIZE_ENV) $(BIN)/python $$target -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=4096 -artifact_prefix=$(SANITIZE_DIR)/ -print_final_stats=1 \
	    $(SANITIZE_DIR)/corpus/$$name tests/fuzz/corpus/$$name || exit 1; \
	done
