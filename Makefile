# The two commands of the README: `make up` and `make test`. Everything else serves them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install up cluster down status lint test bench clean

# Reinstalled when the dependencies or the set of packages change (an editable install maps
# each top-level package it knew at install time).
PACKAGES := $(wildcard stack/*/__init__.py services/*/__init__.py operator/*/__init__.py bench/*/__init__.py)

$(VENV)/.installed: pyproject.toml $(PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Bring the whole platform up on this machine.
up: install
	$(BIN)/bmt up
	@$(BIN)/bmt status

## The same platform as a real node's pods: the image built here, installed by the Helm chart.
cluster: install
	$(BIN)/bmt cluster up
	@$(BIN)/bmt status

down:
	$(BIN)/bmt down

status:
	$(BIN)/bmt status

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## Lint, bring up what the tests need, run the whole suite. The stack stays up for the next run.
test: lint
	$(BIN)/bmt up
	$(BIN)/pytest

## The benchmark suite against the running platform (after `make up`); figures in bench/results/.
bench: install
	$(BIN)/bmt up
	$(BIN)/python -m bmt_bench

clean: down
	rm -rf .bmt
