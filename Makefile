# `make test` and `make demo` work on a fresh machine: they create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install lint typecheck test test-all demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

# Unit, integration, template and end-to-end tiers; runs marked `slow` are left to `make test-all`.
test: lint typecheck
	$(VENV)/bin/pytest -n 2 -m "not slow" $(PYTEST_ARGS)

test-all: lint typecheck
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/signals demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
