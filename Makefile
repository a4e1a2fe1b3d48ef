# vitrine — every target installs what it needs first (make install is idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_STAMP := vitrine/v1/.generated
PROTOS := $(wildcard protos/vitrine/v1/*.proto)
# Tests: slow ones are skipped locally and run in CI (CI=true) where the budget allows. Capacity
# measurements (load) hold a rate measured on this machine, so they run in make reliability only.
PYTEST_MARK ?= $(if $(CI),not gpu and not load,not slow and not gpu and not load)
PYTEST_ARGS ?=
VITRINE_DATA ?= $(abspath ../shared/data/fashion-product-images)
export VITRINE_DATA

.PHONY: install proto test demo train evaluate bench lint up down reliability clean

install: $(STAMP) $(PROTO_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --config-settings editable_mode=compat -e '.[dev]'
	touch $@

proto: $(PROTO_STAMP)

$(PROTO_STAMP): $(PROTOS) scripts/gen_protos.py $(STAMP)
	$(PY) scripts/gen_protos.py
	touch $@

test: install
	$(PY) -m pytest -m "$(PYTEST_MARK)" $(PYTEST_ARGS)

# make train builds data/bundles/default (training.defaults.default_config); make train
# CONFIG=training/configs/scratch.json builds data/bundles/scratch (the from-scratch ensemble)
CONFIG ?=
BUNDLE ?= data/bundles/$(if $(CONFIG),$(basename $(notdir $(CONFIG))),default)
EVAL_OUT ?= bench/results/eval$(if $(CONFIG),-$(basename $(notdir $(CONFIG))))

train: install
	$(PY) -m training.build_default --data "$(VITRINE_DATA)" $(if $(CONFIG),--config "$(CONFIG)") --out "$(BUNDLE)"

evaluate: install
	$(PY) -m training.evaluate --bundle "$(BUNDLE)" --data "$(VITRINE_DATA)" --out "$(EVAL_OUT)"

demo: install
	$(PY) -m apps.demo --data "$(VITRINE_DATA)"

up: install
	$(PY) -m apps.stack

# Stops only what `make up` started: the processes data/run/stack.pid records (beside the store).
down:
	@if test -x $(PY); then $(PY) -m apps.stack --down; else echo "no stack running"; fi

bench: install
	$(PY) -m bench

# Load, crash, dependency-loss, bad-input, fault and auth scenarios; figures -> bench/results/reliability.json
reliability: install
	VITRINE_RELIABILITY_RESULTS=$(abspath bench/results/reliability.json) \
		$(PY) -m pytest -m "not gpu" tests/reliability -p no:cacheprovider -s

lint: install
	$(VENV)/bin/ruff check apps domain services training tests bench scripts
	$(VENV)/bin/ruff format --check apps domain services training tests bench scripts
	$(VENV)/bin/lint-imports

clean:
	rm -rf vitrine .pytest_cache .ruff_cache
