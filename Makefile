# marketpipe: `make run` (live venues, embedded) and `make test` are all a new user needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data
DEMO_ARGS ?=
RUN_ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: install dbt-venv run demo test lint bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

WEB_STAMP := web/node_modules/.package-lock.json
$(WEB_STAMP): web/package-lock.json  ## the dashboard's charting library, from npm
	bash scripts/install-web-assets.sh

# The Rust extension (native/): rebuilt when its sources change; cargo's cache is .cache/.
NATIVE_STAMP := $(VENV)/.native-installed
$(NATIVE_STAMP): $(STAMP) native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs)
	VENV=$(VENV) bash scripts/build-native.sh
	touch $(NATIVE_STAMP)

install: $(STAMP) $(WEB_STAMP) $(NATIVE_STAMP)

dbt-venv:  ## dbt in .cache/dbt-venv, for the scheduled marts builds (idempotent)
	bash scripts/setup.d/40-dbt-venv.sh

comma := ,
# Every venue and market-data source that needs no key; Finnhub joins when its token is set.
RUN_VENUES ?= binance,coinbase,kraken,coingecko$(if $(MARKETPIPE_FINNHUB__TOKEN),$(comma)finnhub)

run: install dbt-venv  ## live venues -> candles, alerts, DuckDB + Parquet; API on :8000
	$(BIN)/marketpipe run --venues $(RUN_VENUES) --data-dir $(DATA_DIR) $(RUN_ARGS)

demo: install dbt-venv  ## the whole pipeline offline, against the local simulated exchange
	$(BIN)/marketpipe demo --data-dir $(DATA_DIR)/demo $(DEMO_ARGS)

test: install  ## install what the tests need, then run them
	bash scripts/setup-test-deps.sh
	bash scripts/test-native.sh
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench harness
	$(BIN)/ruff format --check src tests bench harness
	$(BIN)/mypy
	$(BIN)/lint-imports

$(BENCH_STAMP): $(STAMP) pyproject.toml
	bash scripts/bench-deps.sh
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## replay vs PySpark/DuckDB/Polars, live latency, memory; BENCH_ARGS=--quick
	$(BIN)/python -m bench $(BENCH_ARGS)

chaos: install  ## every chaos test: 20 kill -9s per run, every fault mode, disk full, read-only (root)
	$(BIN)/pytest tests/chaos -m 'not live' $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Compose stacks (deploy/compose/, settings in deploy/compose/.env): docker compose when a
# Docker engine answers, else podman-compose (with this checkout's podman config).
COMPOSE = $(shell if docker info >/dev/null 2>&1; then echo "docker compose"; \
  else echo ". scripts/containers/env.sh && $(BIN)/podman-compose"; fi)
.PHONY: compose-up compose-down compose-cluster-up compose-cluster-down compose-env
compose-env:  # the stacks' secrets: there are no default passwords
	@test -f deploy/compose/.env || { echo "deploy/compose/.env is missing: cp deploy/compose/.env.example deploy/compose/.env and set its secrets" >&2; exit 2; }
compose-up: compose-env  ## the embedded stack: marketpipe, Prometheus, Grafana (MARKETPIPE_MODE=demo: offline)
	$(COMPOSE) -p marketpipe -f deploy/compose/embedded.yaml --env-file deploy/compose/.env up -d --build
compose-down: compose-env
	$(COMPOSE) -p marketpipe -f deploy/compose/embedded.yaml --env-file deploy/compose/.env down
compose-cluster-up: compose-env  ## the cluster stack: Kafka, PostgreSQL, Redis, S3, the roles, Airflow, Prometheus, Grafana
	$(COMPOSE) -p marketpipe-cluster -f deploy/compose/cluster.yaml --env-file deploy/compose/.env up -d --build
compose-cluster-down: compose-env
	$(COMPOSE) -p marketpipe-cluster -f deploy/compose/cluster.yaml --env-file deploy/compose/.env down
