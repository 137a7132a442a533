# The only entry points people need. Each target builds the venv it uses, so a fresh clone works.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
E2E_STAMP := $(VENV)/.installed-e2e

.PHONY: help venv demo test unit lint e2e clean

help:
	@echo "make demo   run the example DAG end to end against the bundled emulator (or the real API)"
	@echo "make test   lint, then every test (unit, integration, dag.test(), conformance)"
	@echo "make lint   ruff and mypy"
	@echo "make e2e    real Airflow (Postgres, Celery, two triggerers) against the emulator: the scenarios table"

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,lint]"
	touch $(STAMP)

venv: $(STAMP)

$(E2E_STAMP): $(STAMP) setup.cfg
	$(BIN)/python -m pip install --quiet -e ".[test,lint,e2e]"
	touch $(E2E_STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check provider tests dags scripts
	$(BIN)/ruff format --check provider tests dags scripts
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

e2e: $(E2E_STAMP)
	bash tests/e2e/install_system_deps.sh
	$(BIN)/python -m tests.e2e.run_e2e

clean:
	rm -rf $(VENV) build *.egg-info provider/*.egg-info .pytest_cache .mypy_cache .ruff_cache
