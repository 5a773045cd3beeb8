# Two commands matter: `make run` and `make test`. Both create the virtualenv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PORT ?= 8000

.PHONY: venv run run-moto reconcile test lint clean

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(INSTALLED)

venv: $(INSTALLED)

## Start the API on the embedded local backend at http://127.0.0.1:$(PORT) (data in ./.certstore).
run: venv
	$(BIN)/chalice local --stage local --host 127.0.0.1 --port $(PORT) --no-autoreload

## The AWS backend against a local moto server (fake credentials, no AWS account).
run-moto: venv
	$(BIN)/python -m devtools.run_moto --port $(PORT)

## Rebuild missing inventory items from the certificate store (backend from the environment).
reconcile: venv
	$(BIN)/python -m chalicelib.reconcile

## Lint, then the whole test suite.
test: venv lint
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
