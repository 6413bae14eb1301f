# aisdk-bridge: `make run` serves the bridge, `make test` runs every test.
# Both set up what they need on a fresh machine (Python venv, Redis, Node >= 22, Chromium).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Where `make run` / `make demo` serve: BRIDGE_HOST/BRIDGE_PORT, else HOST/PORT (as the bridge
# itself reads them), else loopback:8000.
BRIDGE_HOST ?= $(or $(HOST),127.0.0.1)
BRIDGE_PORT ?= $(or $(PORT),8000)
DEMO_PORT ?= 3000
STAMP := $(VENV)/.installed
# Every dependency, transitive included, at the version CI tested (a pip constraints file).
LOCK := requirements.lock
# `make test-latest`: the newest releases, no lock, in a venv of their own.
LATEST_VENV := .venv-latest
FAST_TESTS := -m "not node and not browser and not slow"
# The newest releases get the slow tests too: a quiet minute on Redis catches socket timeouts.
LATEST_TESTS := -m "not node and not browser"
# `make test` leaves out the slow tests (over a minute each); `make chaos` runs them.
TEST_MARKS := -m "not slow"
REDIS_ENV = REDIS_SERVER_BIN="$$(bash scripts/ensure-redis.sh)"

.PHONY: help install run test test-fast test-latest chaos lock lint format bench demo tools dist dist-check clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

# A changed pyproject.toml or lock reinstalls; pip moves each package to its locked version.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) --upgrade pip
	$(PY) -m pip install --quiet -c $(LOCK) --build-constraint $(LOCK) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the bridge and its dev tools at the locked versions

run: $(STAMP) ## Serve the bridge on BRIDGE_HOST:BRIDGE_PORT (default 127.0.0.1:8000)
	$(PY) -m bridge --host $(BRIDGE_HOST) --port $(BRIDGE_PORT)

lock: ## Re-resolve pyproject.toml to the newest releases and pin them all in requirements.lock
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet --upgrade pip setuptools
	$(VENV)-lock/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' $(LOCK); \
	  $(VENV)-lock/bin/python -m pip freeze --all --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf $(VENV)-lock
	@echo "requirements.lock updated: run 'make test', then commit it"

tools: $(STAMP) ## Install what the tests need: redis-server, Node >= 22 + the ai package, Node 20, Chromium
	@bash scripts/ensure-redis.sh >/dev/null
	@bash scripts/ensure-node.sh >/dev/null
	@bash scripts/ensure-node.sh 20 >/dev/null
	@bash scripts/ensure-node-deps.sh >/dev/null
	@bash scripts/ensure-chromium.sh >/dev/null

test: tools ## Run the test suite (unit, Redis, Node conformance, browser, chaos but the slow ones)
	$(REDIS_ENV) $(PY) -m pytest -q $(TEST_MARKS)

test-fast: $(STAMP) ## Run the tests that need neither Node nor a browser (Redis: installed when absent)
	$(REDIS_ENV) $(PY) -m pytest -q $(FAST_TESTS)

chaos: $(STAMP) ## Kill, pause and cut off real bridge and redis-server processes mid-answer (all scenarios)
	$(REDIS_ENV) $(PY) -m pytest -q tests/chaos

test-latest: ## Run the fast tests against the newest release of every dependency (no lock)
	test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	@newer="$$($(LATEST_VENV)/bin/python -m pip freeze --exclude-editable \
	  | grep -vxF -f <(grep -v '^#' $(LOCK)) || true)"; \
	  echo "Not as in $(LOCK): $${newer:-nothing}" | tr '\n' ' '; echo
	$(REDIS_ENV) $(LATEST_VENV)/bin/python -m pytest -q $(LATEST_TESTS)

lint: $(STAMP) ## ruff + mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check protocol bridge
	$(VENV)/bin/mypy

format: $(STAMP) ## Apply ruff's formatting and fixes
	$(VENV)/bin/ruff format protocol bridge tests bench
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) ## Bridge vs a Node reference on one Redis, same fake upstream (BENCH_ARGS=--quick)
	BENCH_NODE="$$(bash scripts/ensure-bench-deps.sh)" $(REDIS_ENV) \
		$(PY) -m bench $(BENCH_ARGS)
	$(PY) -m bench.replay

demo: $(STAMP) ## Start the bridge and the Next.js demo together (http://127.0.0.1:3000)
	@bash scripts/demo.sh $(BRIDGE_HOST) $(BRIDGE_PORT) $(DEMO_PORT)

dist: $(STAMP) ## Build the wheel and sdist and the transport's npm package into dist/
	bash scripts/dist.sh $(PY)

dist-check: tools ## Build them, install them with their dependencies into a fresh venv / npm project, smoke-test
	DIST_FULL_INSTALL=1 $(REDIS_ENV) $(PY) -m pytest -q tests/test_dist.py

clean: ## Remove caches and build output (keeps .venv and .tools)
	rm -rf $(LATEST_VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts frontend-demo/.next dist build
