# Two commands for a fresh machine with only Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= $(if $(NCF_DATA_DIR),$(NCF_DATA_DIR),data/ml-1m)

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Set up, fetch MovieLens 1M if needed, run the main job.
run: $(STAMP)
	@if [ -z "$(NCF_DATA_DIR)" ] && [ ! -f data/ml-1m/ratings.dat ]; then \
		$(PY) -m batch fetch-data --dataset ml-1m --dest data/ml-1m || exit $$?; fi
	$(PY) -m batch run --data-dir $(DATA_DIR)

## Set up and run the whole test suite (lint included).
test: $(STAMP) lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@if $(VENV)/bin/hadolint --version >/dev/null 2>&1; then echo "hadolint Dockerfile"; $(VENV)/bin/hadolint Dockerfile; \
	else echo "hadolint cannot run on this machine: Dockerfile lint skipped"; fi

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) bench/data_speed.py

.PHONY: lock container-test

## Pin the container images' dependencies (requirements/*.txt) to the versions in .venv.
lock: $(STAMP)
	$(PY) scripts/lock_requirements.py

## Build both images with podman and exercise them (root; see docs/operations.md). Minutes, not in `test`.
container-test:
	bash scripts/container_test.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

## Baselines leaderboard on ML-1M: bench/results/leaderboard.{json,md,png} (long: the grids refit every model).
.PHONY: leaderboard
leaderboard: $(STAMP)
	$(PY) bench/leaderboard.py --data-dir $(DATA_DIR)
