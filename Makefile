# Two commands from a fresh clone: `make run` (the demo) and `make test` (the suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck check docs bench sandbox clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The demo: local servers, a 1,000-request campaign, a live progress line, a summary.
run: $(STAMP)
	$(BIN)/python -m worker.devstack.demo

## The test suite (real local servers over HTTP; no mocks of AWS), in two streams at once:
## the long matrix (`-m long`: dependency faults, crash window, rate sharing across processes,
## mostly waiting on timers) beside everything else, each with its own local servers. The long
## stream's output follows the other's; either failing fails the target.
test: $(STAMP)
	@$(BIN)/python -m pytest -q -p no:cacheprovider -m long > .pytest-long.log 2>&1 & long=$$!; \
	$(BIN)/python -m pytest -q -m "not long"; rest=$$?; \
	echo "--- the long matrix (-m long) ---"; wait $$long; status=$$?; cat .pytest-long.log; \
	exit $$(( rest || status ))

lint: $(STAMP)
	$(BIN)/ruff check worker tests
	$(BIN)/ruff format --check worker tests

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

## The docs/ pages as a site in site/, strict: a broken link or anchor, or a page missing from
## mkdocs.yml's nav, fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

## The benchmark: the worker against two boto3 baselines (about 15 minutes on 2 cores).
## dynalite (a faster DynamoDB-compatible server) comes from npm when Node.js is present;
## BENCH_DYNAMO=moto serves DynamoDB from moto instead.
bench: $(STAMP)
	@if command -v npm >/dev/null && [ ! -x .bench-tools/node_modules/.bin/dynalite ]; then \
		npm install --silent --no-audit --no-fund --prefix .bench-tools dynalite@4.0.0; fi
	$(BIN)/python -m bench.run

sandbox: $(STAMP)
	$(BIN)/sms-worker sandbox

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
