# Two targets a newcomer needs: `make test` and `make report`. Both bootstrap .venv on first
# use and are idempotent: the stamp is only rebuilt when pyproject.toml changes.
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.genscope-installed
# The CPU wheel of torch lies on this machine's disk; pin it explicitly and first, because a bare
# `torch` (or a wide range) would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: test report lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

report: $(STAMP)
	$(BIN)/genscope report

clean:
	rm -rf $(VENV) genscope-runs genscope-report
