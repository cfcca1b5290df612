# The two quick-start commands (README) and what CI runs verbatim (.ci/run calls `make test`).
# Each target installs what it needs into .venv first; nothing else has to be on the machine
# beyond Python 3.11+ and make.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck unit bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/tradestream demo --trades 20000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.producer
	$(BIN)/python -m bench.hotstore
	$(BIN)/python -m bench.producer_memory
	$(BIN)/python -m bench.enrich
	$(BIN)/python -m bench.read_api
	$(BIN)/python -m bench.dashboard
	$(BIN)/python -m bench.lake_query
	$(BIN)/python -m bench.aggregation
	$(BIN)/python -m bench.producer_ceiling
	$(BIN)/python -m bench.shard_throughput
	$(BIN)/python -m bench.embedded

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
