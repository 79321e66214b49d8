# Two commands for a fresh machine: `make demo` and `make test`. Each builds .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# libtpu (the tpu extra) lets the tests AOT-compile for TPU topologies on a CPU-only machine; the gcp
# extra lets them check gs:// run claims against an in-process fake of the storage API; the
# tensorboard and wandb extras let them read back what the optional trackers wrote.
$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,tpu,gcp,tensorboard,wandb]'
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(BIN)/mixlaws demo

lint: $(VENV)/.test
	$(BIN)/ruff check mixlaws experiments launch tests
	$(BIN)/ruff format --check mixlaws experiments launch tests

test: lint
	$(BIN)/python -m pytest -n 2 --dist worksteal -q

clean:
	rm -rf $(VENV) runs
