# aisdk-bridge: `make run` serves the bridge, `make test` runs every test.
# Both set up what they need on a fresh machine (Python venv, Redis, Node >= 22, Chromium).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_PORT ?= 3000
STAMP := $(VENV)/.installed

.PHONY: help install run test test-fast lint format bench demo tools clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the bridge with its dev tools

run: $(STAMP) ## Serve the bridge on HOST:PORT (default 127.0.0.1:8000)
	$(PY) -m bridge --host $(HOST) --port $(PORT)

tools: $(STAMP) ## Install what the tests need: redis-server, Node >= 22 + the ai package, Chromium
	@bash scripts/ensure-redis.sh >/dev/null
	@bash scripts/ensure-node.sh >/dev/null
	@bash scripts/ensure-node-deps.sh >/dev/null
	@bash scripts/ensure-chromium.sh >/dev/null

test: tools ## Run the whole test suite (unit, Redis, Node conformance, browser)
	REDIS_SERVER_BIN="$$(bash scripts/ensure-redis.sh)" $(PY) -m pytest -q

test-fast: $(STAMP) ## Run the tests that need neither Node nor a browser (Redis: installed when absent)
	REDIS_SERVER_BIN="$$(bash scripts/ensure-redis.sh)" $(PY) -m pytest -q -m "not node and not browser"

lint: $(STAMP) ## ruff + mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check protocol bridge
	$(VENV)/bin/mypy

format: $(STAMP) ## Apply ruff's formatting and fixes
	$(VENV)/bin/ruff format protocol bridge tests bench
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) ## Bridge vs a Node reference on one Redis, same fake upstream (BENCH_ARGS=--quick)
	BENCH_NODE="$$(bash scripts/ensure-bench-deps.sh)" REDIS_SERVER_BIN="$$(bash scripts/ensure-redis.sh)" \
		$(PY) -m bench $(BENCH_ARGS)

demo: $(STAMP) ## Start the bridge and the Next.js demo together (http://127.0.0.1:3000)
	@bash scripts/demo.sh $(HOST) $(PORT) $(DEMO_PORT)

clean: ## Remove caches and build output (keeps .venv and .tools)
	rm -rf .pytest_cache .mypy_cache .ruff_cache test-artifacts frontend-demo/.next
