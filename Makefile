# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install check lint unit browser-deps bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps -e clients/python
	touch $(STAMP)

install: $(STAMP)

run: install
	HUB_DEV=$${HUB_DEV:-1} $(BIN)/python -m hub serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

browser-deps:
	@sh .ci/browser-deps

unit: install
	$(BIN)/python -m pytest -q

test: install browser-deps lint
	$(BIN)/python -m pytest -q -ra

bench: install
	$(BIN)/python bench/fanout.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
