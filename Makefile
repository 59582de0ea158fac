# `make test` and `make demo` work on a fresh machine: they create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install lint typecheck test test-slow test-all test-latest fuzz demo clean trino

# Everything installs from uv.lock (exact versions and hashes), never from whatever PyPI serves today:
# uv comes first by the hashes that lock records for it, then `uv sync --locked` makes .venv exactly
# the lock (and refuses a lock that no longer matches pyproject.toml: run `make lock`).
UV := $(VENV)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)

$(STAMP): pyproject.toml uv.lock
	$(PYTHON) -m venv $(VENV)
	$(PYTHON) -m deploy.devlock bootstrap > $(VENV)/uv-bootstrap.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(VENV)/uv-bootstrap.txt
	$(UV) sync --locked --extra dev --quiet
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Unit, integration, template and end-to-end tiers; runs marked `slow` are left to `make test-slow`
# (CI runs both: sam validate and checkov, arm64 artifact builds, make demo from a clean clone).
# --dist loadscope: a module's tests share one worker, so a module-scoped local stack starts once, not
# once per worker.
test: lint typecheck
	$(VENV)/bin/pytest -n 2 --dist loadscope -m "not slow" $(PYTEST_ARGS)

# The slow tier includes the Trino-backed stack (tests/e2e/local/test_trino.py, the chaos campaign on
# Trino): `make trino` fetches Trino first, or finds it cached. Without Maven or a JDK 24+ it fails
# with the message that says which, and so does the tier: no test skips for want of Trino.
test-slow: $(STAMP) trino
	$(VENV)/bin/pytest -n 2 -m slow $(PYTEST_ARGS)

# Trino behind the local Athena (`signals local --athena-engine trino`): its server and plugins from
# Maven Central into ~/.cache/signals/trino/<version> ($$SIGNALS_TRINO_CACHE), once; docs/local-stack.md.
trino: $(STAMP)
	$(VENV)/bin/signals trino fetch

test-all: lint typecheck
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

# The canary: the newest releases pyproject's ranges allow, in a venv of their own (.venv-latest), with
# the unit, integration and local end-to-end tests. It prints which packages moved since uv.lock. A red
# canary is drift in the world, not a defect of the commit: CI reports it and still lands (docs/operations.md,
# "Dependency drift"); CANARY_STRICT=1 makes it fail the run instead.
LATEST ?= .venv-latest
test-latest: $(STAMP)
	rm -rf $(LATEST)
	$(UV) venv --quiet --python $(PY) $(LATEST)
	VIRTUAL_ENV=$(CURDIR)/$(LATEST) $(UV) pip install --quiet --refresh --upgrade -e '.[dev]'
	$(PY) -m deploy.devlock drift --python $(LATEST)/bin/python
	@$(LATEST)/bin/pytest -n 2 -m "not slow" -p no:cacheprovider -q tests/unit tests/integration tests/e2e/local \
		$(PYTEST_ARGS) > $(LATEST)/canary.log 2>&1; status=$$?; \
	grep -E '^(FAILED|ERROR) ' $(LATEST)/canary.log | head -40; \
	summary=$$(tail -n 1 $(LATEST)/canary.log | tr -d '='); \
	if [ $$status -eq 0 ]; then echo "canary: green on the newest releases:$$summary"; \
	else echo "canary: RED on the newest releases (exit $$status; full log $(LATEST)/canary.log). The lock is unaffected: make test installs uv.lock."; \
	[ -z "$(CANARY_STRICT)" ]; fi

# The fuzz tier at length (`make test` runs it with 25 examples per property): hostile bodies and raw
# objects through the ingester and the parser. FUZZ_EXAMPLES per property; figures in docs/data-contract.md.
FUZZ_EXAMPLES ?= 1000
fuzz: $(STAMP)
	SIGNALS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest tests/fuzz -n 0 -p no:randomly -q --hypothesis-show-statistics $(PYTEST_ARGS)

# The README and the banners say `signals ...`: the command lives in .venv/bin.
PATH_HINT = @echo "signals (and aws) are in $(CURDIR)/$(VENV)/bin: run 'source $(VENV)/bin/activate' (or export PATH=\"$(CURDIR)/$(VENV)/bin:\$$PATH\") to type 'signals local', 'signals query ...' as the README does"

install: $(STAMP)
	$(PATH_HINT)

demo: $(STAMP)
	$(VENV)/bin/signals demo
	$(PATH_HINT)

clean:
	rm -rf $(VENV) $(LATEST) .mypy_cache .ruff_cache .pytest_cache build *.egg-info $(TOOLS) .aws-sam

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

# The one command that refreshes every lock: uv.lock (the dev/demo environment `make` installs) to the
# newest releases pyproject's ranges allow, then the per-function Lambda locks (python3.13 arm64,
# deploy/locks/). Review the diff (`git diff uv.lock deploy/locks`) and run `make test` before committing.
lock: $(STAMP)
	$(UV) lock --upgrade
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
