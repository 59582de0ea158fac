# `make test` and `make demo` work on a fresh machine: they create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install lint typecheck test test-slow test-all demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Unit, integration, template and end-to-end tiers; runs marked `slow` are left to `make test-slow`
# (CI runs both: sam validate and checkov, arm64 artifact builds, make demo from a clean clone).
test: lint typecheck
	$(VENV)/bin/pytest -n 2 -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(VENV)/bin/pytest -n 2 -m slow $(PYTEST_ARGS)

test-all: lint typecheck
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

# The README and the banners say `signals ...`: the command lives in .venv/bin.
PATH_HINT = @echo "signals (and aws) are in $(CURDIR)/$(VENV)/bin: run 'source $(VENV)/bin/activate' (or export PATH=\"$(CURDIR)/$(VENV)/bin:\$$PATH\") to type 'signals local', 'signals query ...' as the README does"

install: $(STAMP)
	$(PATH_HINT)

demo: $(STAMP)
	$(VENV)/bin/signals demo
	$(PATH_HINT)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info $(TOOLS) .aws-sam

# --- deployment (docs/deploy.md) -----------------------------------------------------------------
TOOLS := .venv-tools
SAM := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov

.PHONY: template-check artifacts lock build-IngesterFunction build-ParserFunction build-RegistryFunction build-ReconcilerFunction build-CompactorFunction

# aws-sam-cli and checkov pin their own boto3 and friends, so each gets a virtualenv of its own.
# Exact versions: a new release may add lint rules or checks, which must not turn CI red by itself.
$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/python -m pip install --quiet "aws-sam-cli==1.170.0"

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet "checkov==3.3.30"

# Glue columns vs shared.schema, cfn-lint, sam validate --lint, checkov (skips justified in template.yaml).
template-check: $(STAMP) $(SAM) $(CHECKOV)
	$(PY) -m deploy.glue_columns --check
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --region us-west-2 --template template.yaml
	$(CHECKOV) --file template.yaml --framework cloudformation --compact --quiet --skip-download

# Exact pins per function for python3.13 arm64, from pyproject.toml (deploy/locks/).
lock: $(STAMP)
	$(PY) -m deploy.build lock

# Zipped artifacts of all five functions with a size report (build/lambda/).
artifacts: $(STAMP)
	$(PY) -m deploy.build all --out build/lambda

# Called by `sam build` (BuildMethod: makefile) with ARTIFACTS_DIR set; standard library only.
build-IngesterFunction:
	$(PYTHON) -m deploy.build build ingester --out "$(ARTIFACTS_DIR)"

build-ParserFunction:
	$(PYTHON) -m deploy.build build parser --out "$(ARTIFACTS_DIR)"

build-RegistryFunction:
	$(PYTHON) -m deploy.build build registry --out "$(ARTIFACTS_DIR)"

build-ReconcilerFunction:
	$(PYTHON) -m deploy.build build reconciler --out "$(ARTIFACTS_DIR)"

build-CompactorFunction:
	$(PYTHON) -m deploy.build build compactor --out "$(ARTIFACTS_DIR)"
