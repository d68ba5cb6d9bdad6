# Two entry points: `make run` (cockpit on the default campaign) and `make test`.
PYTHON ?= python3
VENV ?= .venv
WORKSPACE ?= workspace
PROFILE ?= fed_heart_disease
TEST_WORKERS ?= 3
BIN := $(VENV)/bin
STAMP := $(VENV)/.afr-installed

.PHONY: run test lint env clean

env: $(STAMP)

$(STAMP): pyproject.toml scripts/install_torch.sh scripts/install_sandbox.sh
	scripts/install_sandbox.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	scripts/install_torch.sh $(VENV)
	$(BIN)/pip install -q -e ".[test,local-llm,literature,ray]"
	touch $(STAMP)
	@echo "afr is installed in $(BIN); put it on your PATH with:  source $(BIN)/activate"

run: $(STAMP)
	@echo "afr: the command is $(BIN)/afr; for a bare \`afr\` in this shell: source $(BIN)/activate"
	$(BIN)/afr init $(WORKSPACE) --exist-ok
	$(BIN)/afr run --profile $(PROFILE) --workspace $(WORKSPACE) --proposer scripted

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
