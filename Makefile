# Two commands on a fresh machine:
#   make run    set up and run the main job on the embedded default (all-simulated rig)
#   make test   set up and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared/conformance

.PHONY: setup run demo test lint bench fuzz clean

$(BIN)/gbhil: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/gbhil

run: setup
	$(BIN)/gbhil run

demo: setup
	$(BIN)/gbhil demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/gbcs_rtds.py
	$(BIN)/python benchmarks/han_medium.py
	$(BIN)/python benchmarks/devices_scale.py
	$(BIN)/python benchmarks/duis_throughput.py --requests 1000

fuzz: setup
	$(BIN)/python benchmarks/gbcs_fuzz.py

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache .hypothesis
