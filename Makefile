# Tidings: `make run` starts the gateway with a demo set-up, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench bench-postgres bench-e2e bench-e2e-postgres bench-db-cost clean

# Two levels: `make run` installs only what the gateway needs to run (RUNTIME); the dev
# tools (pytest, ruff, mypy, playwright, schemathesis, …) come with `make test` / `lint`.
RUNTIME := $(VENV)/.runtime-stamp

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(RUNTIME)
	$(BIN)/tidings serve --demo

# TIDINGS_REQUIRE_POSTGRES=1: the PostgreSQL half of the suite must run, not be skipped.
test: $(STAMP)
	TIDINGS_REQUIRE_POSTGRES=$${TIDINGS_REQUIRE_POSTGRES:-1} $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.run --database sqlite

bench-postgres: $(STAMP)
	$(BIN)/python -m bench.run --database postgres

# Side by side with Kannel (issue 13): bench/README.md, "End to end against Kannel".
bench-e2e: $(STAMP)
	$(BIN)/python -m bench.e2e --database sqlite

bench-e2e-postgres: $(STAMP)
	$(BIN)/python -m bench.e2e --database postgres

# What one message costs PostgreSQL, per stage (issue 18): bench/README.md, "Database cost".
bench-db-cost: $(STAMP)
	$(BIN)/python -m bench.dbcost

clean:
	rm -rf $(VENV) build dist *.egg-info
