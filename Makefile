# Quick start: `make train` (main job: cGAN on FER2013) and `make test` (the test suite CI runs).
# Both create .venv and install the pinned stack (constraints.txt) when it is missing or stale.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the dataset: $(EXPRBENCH_DATA), else data/fer2013.* (zip, csv or folder) in this repository, else ../shared/
DATA ?= $(or $(EXPRBENCH_DATA),$(firstword $(wildcard data/fer2013.zip data/fer2013.csv data/fer2013)),../shared/data/fer2013.zip)
TRAIN_ARGS ?= --set model.ch=32 --steps 3000

.PHONY: install train test perf clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/exprbench train cgan --data $(DATA) --out results/runs/cgan-quickstart --resume $(TRAIN_ARGS)

# -n auto: one pytest-xdist worker per core (the smoke-suite gate runs first, on one of them)
TEST_ARGS ?= -n auto --durations=15
test: $(STAMP)
	$(BIN)/python -m pytest -q $(TEST_ARGS)

perf: $(STAMP)
	$(BIN)/python -m pytest benchmarks/perf --benchmark-enable --benchmark-only --benchmark-autosave

clean:
	rm -rf $(VENV) results/runs
