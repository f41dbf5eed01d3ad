# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := 1
export FEAST_USAGE := False
export DBT_SEND_ANONYMOUS_USAGE_STATS := False

.PHONY: install run test ui bench clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

## Materialize the whole asset graph on the embedded default (synthetic data, DuckDB, SQLite, local Dagster).
run: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -m orchestration.run_all

## Run the test suite.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Dagster UI on 127.0.0.1:3000 (workspace.yaml).
ui: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf var
