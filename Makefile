# pipeform's tasks. `make quickstart` and `make test` are the README's two commands.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
QUICKSTART := specs/examples/quickstart

.PHONY: install install-dev quickstart test lint typecheck generate bench clean image

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[trainer]'

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,trainer,mlflow,postgres,aws,kubernetes,lineage,spark]'

# The main job: plan, then apply, the quickstart on the embedded default: snapshot and
# validate the data, materialise features, train and register the model, write the
# alert and SLO rule files. State and artifacts go to $(QUICKSTART)/.pipeform; run it
# again and nothing changes. The Secret's value comes from QUICKSTART_METRICS_TOKEN
# (a demo value unless you set one).
QUICKSTART_METRICS_TOKEN ?= quickstart-demo-value
export QUICKSTART_METRICS_TOKEN

quickstart: install
	$(BIN)/pipeform plan $(QUICKSTART)
	$(BIN)/pipeform apply --auto-approve $(QUICKSTART)

# The whole suite: lint, import layers (import-linter contracts in pyproject.toml), types, tests.
test: install-dev
	$(BIN)/ruff check reconciler providers trainer tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: install-dev
	$(BIN)/ruff check reconciler providers trainer tests bench
	$(BIN)/ruff format --check reconciler providers trainer tests bench
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

# Regenerate what is generated from the models: JSON Schemas and reference docs.
generate: install-dev
	$(BIN)/pipeform schema --write specs/schema
	$(BIN)/python -m reconciler.cli.docgen

bench: install-dev
	$(BIN)/python bench/validate.py

# The trainer image, pipeform-trainer:<version>, with podman (docker where there is no
# podman): the CPU base made from Debian's packages (cached), wheels downloaded here, no
# network inside the build; prints its size and digest. BASE_IMAGE=... for another base
# (a CUDA PyTorch image for GPUs: see docs/reference/trainer.md).
image: install
	PYTHON=$(BIN)/python bash trainer/image/build.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
