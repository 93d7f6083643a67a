# Certa — `make help` lists the targets.
#
# The two commands a newcomer needs:  `make run`  (set up, start the local stack, solve a sample problem)
#                                     `make test` (set up, run every test)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STATE_DIR ?= .certa
MODEL ?= qwen2.5-coder-0.5b
CERTA_PORT ?= 50051
CERTA_HTTP_PORT ?= 8080
TRITON_GRPC_PORT ?= 8001
TRITON_HTTP_PORT ?= 8000
TRITON_METRICS_PORT ?= 8002
REDIS_PORT ?= 6379
BENCH_QUESTIONS ?= 20
REPLAY_QUESTIONS ?= 2000
REPLAY_BUDGET ?= 8
export MODEL CERTA_PORT CERTA_HTTP_PORT TRITON_GRPC_PORT TRITON_HTTP_PORT TRITON_METRICS_PORT REDIS_PORT STATE_DIR VENV

PROTO_OUT := clients/python/src

.PHONY: help install lock run up down logs status solve test test-fast test-unit test-integration test-e2e test-chart lint proto proto-check bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create the virtual environment and install everything (builds llama.cpp once)

$(VENV)/.installed: constraints.lock clients/python/pyproject.toml services/controller/pyproject.toml services/bench/pyproject.toml services/triton-local/pyproject.toml deploy/local/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash deploy/local/install.sh
	touch $@

run: install ## Start the local stack (Redis, Triton + model, controller) and solve a sample GSM8K problem
	bash deploy/local/stack.sh up
	$(VENV)/bin/certa demo --address 127.0.0.1:$(CERTA_PORT) $(if $(filter-out 0,$(CERTA_HTTP_PORT)),--http-url http://127.0.0.1:$(CERTA_HTTP_PORT))
	@echo
	@echo "The stack is still running: 'make solve Q=\"...\"' asks it, 'make logs' shows logs, 'make down' stops it."

up: install ## Start the local stack in the background (says so if it is already up)
	bash deploy/local/stack.sh up

down: ## Stop the local stack
	bash deploy/local/stack.sh down

logs: ## Show the local stack's logs
	bash deploy/local/stack.sh logs

status: ## Show what runs in the local stack
	bash deploy/local/stack.sh status

solve: install ## Ask the running stack a question: make solve Q="What is 17 * 23?"
	$(VENV)/bin/certa solve --address 127.0.0.1:$(CERTA_PORT) "$(Q)"

test: install proto-check ## Run every test (unit, integration with real Triton, end to end)
	$(PY) -m pytest

test-fast test-unit: install ## Run the pure unit tests only (seconds)
	$(PY) -m pytest -m unit

test-integration: install ## Run the tests against real Redis, Triton and gRPC servers
	$(PY) -m pytest -m integration

test-e2e: install ## Run the end-to-end tests of the local stack (real model)
	$(PY) -m pytest -m e2e

test-chart: install ## Run the Helm chart tests (real helm render)
	$(PY) -m pytest -m chart

lock: ## Re-resolve every dependency in a clean virtual environment and pin the result in constraints.lock
	tmp=$$(mktemp -d) && $(PYTHON) -m venv $$tmp/venv && \
	$$tmp/venv/bin/pip install --quiet --find-links "$${CERTA_WHEEL_CACHE:-$$HOME/.cache/certa/wheels}" \
		-e clients/python -e "services/controller[dev]" -e services/bench -e "services/triton-local[model]" && \
	{ sed -n '1,3p' constraints.lock; $$tmp/venv/bin/pip freeze --exclude-editable; } > constraints.lock.new && \
	mv constraints.lock.new constraints.lock && rm -rf $$tmp

lint: install ## Lint: ruff, the type checker, the import layering contracts and buf lint on the API
	$(VENV)/bin/ruff check services tests clients
	cd services/controller && ../../$(VENV)/bin/mypy
	cd services/controller && ../../$(VENV)/bin/lint-imports
	cd clients/python && ../../$(VENV)/bin/mypy
	buf=$$(deploy/tools/get-buf.sh) && "$$buf" lint proto

proto: install ## Regenerate the API's Python code (clients/python/src/certa_client/v1) from proto/
	$(PY) clients/python/generate_stubs.py $(PROTO_OUT)

proto-check: install ## Fail when the committed generated code differs from proto/
	@tmp=$$(mktemp -d); \
	$(PY) clients/python/generate_stubs.py $$tmp; \
	if ! diff -r -q $$tmp/certa_client/v1 $(PROTO_OUT)/certa_client/v1 -x __init__.py -x __pycache__ >/dev/null; then \
		diff -r $$tmp/certa_client/v1 $(PROTO_OUT)/certa_client/v1 -x __init__.py -x __pycache__ | head -40; \
		echo "generated code is out of date: run 'make proto' and commit the result"; rm -rf $$tmp; exit 1; \
	fi; rm -rf $$tmp; echo "generated code matches proto/"

bench: install ## Benchmark plain CoT vs Dynasor-CoT presets on GSM8K with the local stack
	bash deploy/local/stack.sh up
	$(VENV)/bin/certa-bench dynasor --address 127.0.0.1:$(CERTA_PORT) --questions $(BENCH_QUESTIONS) --out bench-results

.PHONY: bench-consistency
bench-consistency: install ## Self-consistency at equal budgets on GSM8K with the local stack (records samples for replay)
	bash deploy/local/stack.sh up
	$(VENV)/bin/certa-bench consistency --address 127.0.0.1:$(CERTA_PORT) --questions $(BENCH_QUESTIONS) --out bench-results

EXIT_RECORDINGS ?= $(wildcard services/bench/recordings/*-gsm8k.jsonl)

.PHONY: bench-exit
bench-exit: install ## Exit engine from the checked-in recordings (seconds): plain, mid/high/crazy, auto at risk 0.05 and 0.1
	@for recording in $(EXIT_RECORDINGS); do \
	  $(VENV)/bin/certa-bench exit $$recording --alpha 0.05,0.1 --out bench-results || exit 1; echo; done

.PHONY: bench-replay
bench-replay: install ## Replay bandit vs uniform allocation, the stop rules and online budget pools over synthetic answers (no model)
	$(VENV)/bin/certa-bench replay --synthetic $(REPLAY_QUESTIONS) --budget $(REPLAY_BUDGET) --seed 0
	$(VENV)/bin/certa-bench replay --synthetic $(REPLAY_QUESTIONS) --budget 4 --seed 0 --online

clean: down ## Stop the stack and remove the virtual environment and state
	rm -rf $(VENV) $(STATE_DIR)

# -- load and fault campaign (issue "Security and resilience") ----------------------------------------------------

BENCH_LOAD_REQUESTS ?= 1000
BENCH_LOAD_ARGS ?=

.PHONY: bench-load

bench-load: install ## Load and faults: 1,000 requests at once, then backend/Redis/replica faults (bench-results/load.json)
	$(PY) -m certa_bench.load --requests $(BENCH_LOAD_REQUESTS) --out bench-results/load.json $(BENCH_LOAD_ARGS)

.PHONY: bench-fairness

bench-fairness: install ## Fairness only: a flooding and a light tenant, light p99 with and without the fair queue
	$(PY) -m certa_bench.load --fairness --out bench-results/fairness.json $(BENCH_LOAD_ARGS)
