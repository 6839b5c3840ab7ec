# The README's quick start: `make demo` and `make test`. Both work on a fresh machine with only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest completions bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/orbcast demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check orbcast tests bench
	$(BIN)/ruff format --check orbcast tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

completions: $(STAMP)
	$(BIN)/python -m orbcast.completions completions

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/fetch.py
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/query.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache orbcast-demo.otlp.json
