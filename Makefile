# One entry point. `make demo` and `make test` do all set-up on a fresh machine:
# a virtual environment, the package with its extras, and the Maven jars (into .cache/, once).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export RUNSTREAM_CACHE_DIR ?= $(CURDIR)/.cache
export RUNSTREAM_HOME ?= $(CURDIR)/.runstream

.PHONY: demo test lint jars kafka-up kafka-down bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(INSTALLED)

jars: $(INSTALLED)
	$(PY) -m runstream jars

demo: jars
	$(PY) -m runstream demo

test: jars
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

kafka-up: jars
	$(PY) -m runstream kafka up

kafka-down: $(INSTALLED)
	$(PY) -m runstream kafka down

clean:
	rm -rf $(VENV) .cache .runstream .pytest_cache .mypy_cache .ruff_cache
