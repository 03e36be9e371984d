# Nightshift: `make demo` and `make test` are all a newcomer needs; both build .venv when missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

export PATH := $(BIN):$(PATH)
export AIRFLOW_HOME ?= $(CURDIR)/.local/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := True
export NIGHTSHIFT_HOME := $(CURDIR)

DEMO_START ?= 2025-06-01
DEMO_END ?= 2026-02-10
DEMO_TRAIN_DATE ?= 2026-01-04
DEMO_CHALLENGER_DATE ?= 2026-02-15
DEMO_SCORE_DATES ?= 2026-02-07 2026-02-08 2026-02-09
DEMO_DRIFT_DATE ?= 2026-02-11

.PHONY: help install demo test reliability-report schema settings up down clean

help:
	@echo "make demo   - install, generate sample data, train and score credit_default, print a summary"
	@echo "make test   - install and run the test suite (writes no tracked file)"
	@echo "make reliability-report - run the reliability tier and write docs/reliability.md and the README's table"
	@echo "make bench  - run the benchmarks (~8 min on 2 idle cores) and write docs/benchmarks.md"
	@echo "make schema - regenerate include/pipeline.schema.json"
	@echo "make settings - apply airflow_settings.yaml (connections, pools, variables) to the local Airflow"
	@echo "make up     - Airflow (http://127.0.0.1:8080) and MLflow (http://127.0.0.1:5000) UIs; make down stops them"
	@echo "make clean  - remove .local/ and data/ (keeps .venv)"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or run make PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt requirements-data.txt pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-data.txt  # data files only (ISLP's NYSE for tests/test_realdata.py)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || { tail -20 $(AIRFLOW_HOME)/migrate.log; exit 1; }
	python -m nightshift.cli.settings airflow_settings.yaml

settings: $(STAMP)
	python -m nightshift.cli.settings airflow_settings.yaml

demo: $(STAMP) $(AIRFLOW_HOME)/airflow.db
	python -m nightshift_demo generate --start $(DEMO_START) --end $(DEMO_END)
	python -m nightshift_demo generate --start $(DEMO_DRIFT_DATE) --end $(DEMO_DRIFT_DATE) --drift-from $(DEMO_DRIFT_DATE) --force
	python -m nightshift_demo run --train-date $(DEMO_TRAIN_DATE) --challenger-date $(DEMO_CHALLENGER_DATE) --score-dates $(DEMO_SCORE_DATES) --drift-date $(DEMO_DRIFT_DATE)

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

test: $(STAMP) $(CHROMIUM)
	python -m pytest -q

# The only writer of docs/reliability.md and the README's reliability table: the opt-in plugin in
# tests/reliability/report.py, loaded with -p, writes them after a run of the whole tier (never from `make test`).
reliability-report: $(STAMP)
	python -m pytest -q tests/reliability -p tests.reliability.report

# Measurements, not tests: ~8 minutes on 2 idle cores; writes docs/benchmarks.md, raw results and logs in .local/bench/
.PHONY: bench
BENCH_ARGS ?= --settle 60
bench: $(STAMP)
	python benchmarks/run_all.py $(BENCH_ARGS)

schema: $(STAMP)
	python -m nightshift_demo write-schema

up: $(STAMP) $(AIRFLOW_HOME)/airflow.db
	python -m nightshift.cli.devserver up

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m nightshift.cli.devserver down; else echo "nothing to stop"; fi

clean: down
	rm -rf .local data
