# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Exact versions, resolved from pyproject.toml's ranges by `make lock`: what running
# needs, and that plus the test toolchain.
RUN_LOCK := requirements/run.txt
TEST_LOCK := requirements/test.txt
RUN_STAMP := $(VENV)/.run-stamp
TEST_STAMP := $(VENV)/.test-stamp
UV_VERSION := 0.13.9
# pip, quiet unless it fails (then its whole output); setuptools' editable-install notices
# would otherwise be the first screen a newcomer reads.
PIP = @log=$(VENV)/pip.log; $(BIN)/python -m pip install -q $(1) >$$log 2>&1 || { cat $$log; exit 1; }
LOCK_FLAGS := --universal --python-version 3.11 --annotation-style line --custom-compile-command "make lock" -q

.PHONY: run test install install-run lock check lint unit browser-deps bench bench-cluster clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
		|| { echo "the hub needs Python 3.11 or newer: make run PYTHON=python3.11 (or newer)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(call PIP,--upgrade pip)

$(RUN_STAMP): $(RUN_LOCK) pyproject.toml | $(BIN)/python
	@echo "installing $(RUN_LOCK) into $(VENV)"
	$(call PIP,-r $(RUN_LOCK))
	$(call PIP,--no-deps -e .)
	@touch $@

$(TEST_STAMP): $(TEST_LOCK) pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	@echo "installing $(TEST_LOCK) into $(VENV)"
	$(call PIP,-r $(TEST_LOCK))
	$(call PIP,--no-deps -e .)
	$(call PIP,--no-deps -e clients/python)
	@touch $@

install-run: $(RUN_STAMP)

install: $(TEST_STAMP)

# Re-resolve both locks from pyproject.toml (after changing a dependency or its range;
# UPGRADE=1 also moves every pin to the newest version the ranges allow).
lock: | $(BIN)/python
	$(BIN)/uv --version >/dev/null 2>&1 || $(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml --extra test $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) -o $(TEST_LOCK)
	$(BIN)/uv pip compile pyproject.toml -c $(TEST_LOCK) $(LOCK_FLAGS) -o $(RUN_LOCK)

run: install-run
	@HUB_DEV=$${HUB_DEV:-1} $(BIN)/python -m hub serve --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd clients/python && ../../$(BIN)/mypy  # the Python client, strict (its own pyproject.toml)

browser-deps:
	@sh .ci/browser-deps

unit: install
	$(BIN)/python -m pytest -q

# Two workers (pytest-xdist), each test file on one of them (its module-scoped hub and
# browser are shared by its tests, as when run alone): tests wait on timers, sockets and
# other processes as much as they compute, so the suite takes about half as long.
TEST_WORKERS ?= 2

test: install browser-deps lint
	$(BIN)/python -m pytest -q -ra -n $(TEST_WORKERS) --dist loadfile

# Each benchmark installs its Node side (bench/node_modules) itself on first use.
bench: install-run
	$(BIN)/python bench/fanout.py

bench-cluster: install-run
	$(BIN)/python bench/cluster.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
