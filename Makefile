# Set-up and the two everyday commands. Every target creates the virtual
# environment on first use, so a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MESSAGES ?= 100000
BATCH ?= build/nightly-$(MESSAGES).jsonl

.PHONY: run test lint benchmark clean

$(BIN)/ingest: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Generate a realistic nightly batch and run the whole pipeline on the local AWS.
run: $(BIN)/ingest
	mkdir -p build
	$(BIN)/ingest generate --messages $(MESSAGES) --out $(BATCH) --seed 1
	$(BIN)/ingest run $(BATCH)

test: $(BIN)/ingest
	$(BIN)/python -m pytest

# Time, peak memory, clients and connections of `ingest run`; see docs/benchmarks.md.
benchmark: $(BIN)/ingest
	$(BIN)/python benchmarks/nightly.py --messages $(MESSAGES) $(BENCHMARK_ARGS)

# Each function folder is checked on its own, because every one has a module named app.
lint: $(BIN)/ingest
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src/nightly_ingest
	for function in functions/plan functions/parse functions/write functions/reconcile; do \
		(cd $$function && ../../$(BIN)/mypy .) || exit 1; \
	done
	$(BIN)/cfn-lint template.yaml

clean:
	rm -rf $(VENV) build .pytest_cache
