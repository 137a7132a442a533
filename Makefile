# The only entry points people need. Each target builds the venv it uses, so a fresh clone works.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
E2E_STAMP := $(VENV)/.installed-e2e
# Airflow versions for make test-matrix, each tested in its own venv under .venv-matrix/.
LEGS ?= 2.11 3.3
# pytest processes for make test (pytest-xdist's -n): the tests mostly wait on the emulator and dag.test().
# TEST_WORKERS=0 runs them in pytest's own process.
TEST_WORKERS ?= 2

.PHONY: help venv e2e-venv demo test unit lint e2e test-matrix test-matrix-compat test-matrix-full bench screenshots docs clean

help:
	@echo "make demo   run the example DAG end to end against the bundled emulator (or the real API)"
	@echo "make test   lint, then every test (unit, integration, dag.test(), conformance)"
	@echo "make lint   ruff and mypy"
	@echo "make test-matrix       the tests on Airflow 2.11 and 3.3, each in its own venv (LEGS=\"2.11 3.0\" to choose)"
	@echo "make test-matrix-compat  the version-sensitive tests on Airflow 3.0, 3.1 and 3.2 (what CI runs of them)"
	@echo "make test-matrix-full  the tests on Airflow 2.11, 3.0, 3.1, 3.2, 3.3, and 2.11 and 3.3 on Python 3.12"
	@echo "make e2e    real Airflow (Postgres, Celery, two triggerers) against the emulator: the scenarios table"
	@echo "make bench  the performance measurements of issue 6: one table, and out/bench/results.json (~25 min)"
	@echo "make screenshots  retake docs/images/*.png in a real airflow api-server with headless Chromium (not in CI)"

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,lint,s3,openlineage]"
	touch $(STAMP)

venv: $(STAMP)

$(E2E_STAMP): $(STAMP) setup.cfg
	$(BIN)/python -m pip install --quiet -e ".[test,lint,e2e]"
	touch $(E2E_STAMP)

e2e-venv: $(E2E_STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# Not in CI: it needs Chromium (the script says how to install it) and a real api-server.
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

lint: $(STAMP)
	$(BIN)/ruff check provider tests dags scripts benchmarks
	$(BIN)/ruff format --check provider tests dags scripts benchmarks
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

e2e: $(E2E_STAMP)
	bash tests/e2e/install_system_deps.sh
	$(BIN)/python -m tests.e2e.run_e2e

test-matrix:
	$(PYTHON) tests/tooling/matrix/run.py $(LEGS)

# CI's run of the minors it does not run whole: their venvs built side by side, then the tests one leg at a time.
test-matrix-compat:
	$(PYTHON) tests/tooling/matrix/run.py --compat --install-jobs 3

test-matrix-full:
	$(PYTHON) tests/tooling/matrix/run.py --full

# The openai provider is only a comparison: it lives in .venv-bench, pinned to .venv's versions, never in .venv.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_OUT ?= out/bench
# e.g. BENCH_ARGS="--only parse,validation" or "--quick"
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP) benchmarks/requirements-bench.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python -m pip freeze --exclude-editable > $(BENCH_OUT)/constraints.txt
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -c $(BENCH_OUT)/constraints.txt -r benchmarks/requirements-bench.txt
	touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	command -v curl >/dev/null || apt-get install -y -qq curl || echo "no curl: the download comparison is skipped"
	$(BIN)/python -m benchmarks.run --out $(BENCH_OUT) --bench-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info provider/*.egg-info .pytest_cache .mypy_cache .ruff_cache .venv-matrix

# The manual: Sphinx builds docs/ into docs/_build/html, offline (no intersphinx), warnings as errors.
# -E rereads every page: autodoc's pages do not notice a changed docstring otherwise.
DOCS_STAMP := $(VENV)/.installed-docs
.PHONY: docs

$(DOCS_STAMP): $(STAMP) setup.cfg
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python -m sphinx -W --keep-going -E -q -b html docs docs/_build/html
	@echo "the manual: docs/_build/html/index.html"
