# One entry point. `make demo` and `make test` do all set-up on a fresh machine:
# a virtual environment, the package with its extras, and the Maven jars (once).
# No RUNSTREAM_* variable is set here: `make demo` uses the defaults the `runstream` command
# uses, so the broker, the jars and the lake it sets up are the ones a user's next
# `.venv/bin/runstream ...` finds (tests/unit/test_settings.py holds this).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint jars kafka-up kafka-down bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(INSTALLED)

jars: $(INSTALLED)
	$(PY) -m runstream jars

# The walk-forward example's reduced grid (200 runs) through Kafka, the job, the seed's queries
# and the dashboard. DEMO_ARGS passes options: make demo DEMO_ARGS="--port 19092 --windows 8"
demo: jars
	$(PY) -m runstream demo $(DEMO_ARGS)

test: jars
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

kafka-up: jars
	$(PY) -m runstream kafka up

kafka-down: $(INSTALLED)
	$(PY) -m runstream kafka down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
