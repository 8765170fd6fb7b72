# make demo: create the virtual environment if missing, install tunecraft, run the demo study.
# make test: install the test dependencies, run ruff, mypy and pytest.
#
# VENV=path picks another virtual environment (default .venv). DEMO_ARGS="--n-trials 50" and
# PYTEST_ARGS="-k cli" pass options through. Installs re-run when pyproject.toml changes.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_FLAGS ?= --quiet --disable-pip-version-check
DEMO_ARGS ?=
PYTEST_ARGS ?=
CHECKED := src tests benchmarks

.PHONY: help demo test lint typecheck pytest install install-test clean
.DEFAULT_GOAL := help

help:
	@echo "make demo   create $(VENV) if missing, install tunecraft, run the demo study"
	@echo "make test   install the test dependencies, run ruff, mypy and pytest"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -e ".[test]"
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/tunecraft demo $(DEMO_ARGS)

test: lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# pytest exits 5 when it collected no test: a failure here, never a pass.
pytest: $(VENV)/.installed-test
	@status=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "make test: FAILED: pytest collected no tests (exit status 5)" >&2; exit 1; \
	fi; \
	exit $$status

clean:
	rm -rf build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
