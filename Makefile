# Every target explains itself: `make help`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@scripts/ensure-prometheus.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv with the package, test and lint tools (and Debian prometheus)

demo: $(STAMP) ## run a whole canary on this machine: simulated vLLM servers, router, real Prometheus
	$(BIN)/canaryctl up canary/local-demo.yml --time-scale 60 --load 20

replay: $(STAMP) ## replay the four-week canary against synthetic history (canaryctl demo)
	$(BIN)/canaryctl demo

lint: $(STAMP) ## ruff, ruff format --check, mypy --strict, import-linter layer contracts
	$(BIN)/ruff check controlplane tests bench
	$(BIN)/ruff format --check controlplane tests bench
	$(BIN)/mypy controlplane
	$(BIN)/lint-imports

test: lint ## everything CI runs: lint + types + layers, then pytest (warnings are errors)
	$(BIN)/pytest -q

bench: $(STAMP) ## run the benchmarks and rewrite docs/benchmarks.md
	$(BIN)/python bench/run_all.py

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix controlplane tests bench
	$(BIN)/ruff format controlplane tests bench

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info

.PHONY: help setup demo replay lint test bench format clean
