# Two commands matter: `make run` and `make test`. Both create the virtualenv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PORT ?= 8000
MOTO_PORT ?= 5000
PYTEST_WORKERS ?= 3
TF_DIR := terraform
# A local provider mirror for `terraform init` (offline machines); empty means the registry.
TF_PLUGIN_DIR ?= $(wildcard /opt/tf-plugins)
HSM_DIR := .softhsm
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
# The client generator of tests/e2e/test_generated_client.py, in its own virtualenv: its
# dependencies are not pinned with the dev tools'.
OPENAPI_CLIENT_VENV := .venv-openapi-client
OPENAPI_CLIENT_VERSION := 0.29.1
# The stage `make package` packages for: every resource name comes from Terraform's `-var stage`,
# so one package serves any stage (see devtools/chalice_tf.py and README, Deploy to AWS).
STAGE ?= dev

.PHONY: venv run run-moto clean-store reconcile fsck test test-fast pytest lint package \
	teardown-aws tf-validate checkov openapi-client browser-tools hsm-tools hsm-token bench \
	bench-tools clean

$(INSTALLED): requirements.txt requirements-dev.txt pyproject.toml
	@echo "Creating $(VENV) and installing the pinned packages (about a minute the first time)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(INSTALLED)

venv: $(INSTALLED)

## Start the API on the embedded local backend at http://127.0.0.1:$(PORT) (data in ./.certstore):
## granian, one worker per usable CPU (WORKERS=N to choose).
## HSM=1: CA keys may also be kept in the SoftHSM2 token of `make hsm-token` (key_store pkcs11).
run: venv $(if $(filter 1,$(HSM)),hsm-token)
	$(if $(filter 1,$(HSM)),env $$($(BIN)/python -m devtools.softhsm --dir $(HSM_DIR) --env)) \
		$(BIN)/python -m chalicelib.server --host 127.0.0.1 --port $(PORT) $(if $(WORKERS),--workers $(WORKERS))

## The AWS backend against a local moto server (fake credentials, no AWS account): moto on
## MOTO_PORT (default 5000); MOTO_LOG=1 shows moto's request log.
run-moto: venv
	$(BIN)/python -m devtools.run_moto --port $(PORT) --moto-port $(MOTO_PORT) \
		$(if $(filter 1,$(MOTO_LOG)),--moto-log)

## Remove the local store, CERTSTORE_DIR (default ./.certstore), with every certificate and key in
## it. Refused, removing nothing, while a server serves it or when it holds what a store never holds.
clean-store:
	@$(PYTHON) -m chalicelib.adapters.local.serving clean "$${CERTSTORE_DIR:-./.certstore}"

## Rebuild missing inventory items from the certificate store (backend from the environment).
reconcile: venv
	$(BIN)/python -m chalicelib.reconcile

## Check the local store: names every problem (exit 1); REPAIR=1 repairs what can be repaired.
fsck: venv
	$(BIN)/python -m chalicelib.fsck $(if $(REPAIR),--repair)

## Everything CI checks: lint, the infrastructure checks and the whole test suite, side by side
## (the suite waits on servers, Terraform and moto at times: the checks use those waits); lines
## of their output are not mixed, and any failing one fails the whole.
test:
	$(MAKE) --no-print-directory -j 4 --output-sync=line lint tf-validate checkov pytest

## The whole suite: on PYTEST_WORKERS pytest-xdist workers, each test file whole on one worker
## (module fixtures and file order kept) and the slow files handed out first (tests/conftest.py);
## then the `serial` tests alone. Three workers keep two cores busy while tests wait on servers,
## terraform and moto.
pytest: venv openapi-client browser-tools hsm-tools
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not serial"
	$(BIN)/python -m pytest -m serial || [ $$? -eq 5 ]  # 5: no test is marked serial

## The fast tier, for the edit-test loop: the unit tests, and the contract and API suites on the
## local adapters and backend only (no `moto` test, no `slow` one; marks in pyproject.toml), on
## two pytest-xdist workers.
test-fast: venv
	$(BIN)/python -m pytest tests/unit tests/contract tests/api -m "not moto and not slow" -n 2

$(OPENAPI_CLIENT_VENV)/.installed:
	@if $(PYTHON) -m venv $(OPENAPI_CLIENT_VENV) && $(OPENAPI_CLIENT_VENV)/bin/python -m pip \
		install --quiet openapi-python-client==$(OPENAPI_CLIENT_VERSION); then touch $@; \
	else echo "openapi-python-client not installed: the generated-client test is SKIPPED"; fi

## openapi-python-client, which tests/e2e/test_generated_client.py generates a client with.
openapi-client: $(OPENAPI_CLIENT_VENV)/.installed

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## terraform/chalice.tf.json + deployment.zip for STAGE (default dev), fitted to terraform/*.tf.
package: venv
	$(BIN)/python -m devtools.chalice_tf package --stage $(STAGE) $(TF_DIR)

## Delete what stage STAGE (no default) created at run time in AWS IoT and ACM: its CAs, the
## certificates and things registered under them, its ACM imports; found by their app and stage
## tags, never by name. The caller's AWS credentials; REGION= or the configured region. Run it
## before terraform destroy (docs/aws.md, Tearing a stage down); a rerun finishes a failed run.
teardown-aws: venv
	@if [ "$(origin STAGE)" = file ]; then \
		echo "teardown-aws: name the stage: make teardown-aws STAGE=<name>" >&2; exit 2; fi
	$(BIN)/python -m devtools.teardown_iot --stage "$(STAGE)" $(if $(REGION),--region "$(REGION)")

tf-validate: package
	@if ! command -v terraform >/dev/null; then \
		echo "SKIPPED tf-validate: terraform is not installed"; exit 0; fi; \
	set -e; \
	terraform -chdir=$(TF_DIR) fmt -check -diff; \
	terraform -chdir=$(TF_DIR) init -backend=false -input=false -no-color \
		$(if $(TF_PLUGIN_DIR),-plugin-dir=$(abspath $(TF_PLUGIN_DIR))) >/dev/null; \
	terraform -chdir=$(TF_DIR) validate -no-color

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

## checkov on terraform/ (hand-written and generated); skips and reasons: terraform/checkov.yaml.
checkov: package $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov -d $(TF_DIR) --config-file $(TF_DIR)/checkov.yaml --compact --quiet --skip-download

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(OPENAPI_CLIENT_VENV) .pytest_cache .ruff_cache \
		$(TF_DIR)/.terraform $(TF_DIR)/chalice.tf.json $(TF_DIR)/deployment.zip

## Chromium and its driver for the portal's browser test (tests/e2e/test_portal_browser.py), from
## Debian's packages where apt can install them; without them that test is SKIPPED.
browser-tools:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get install -y -qq chromium chromium-driver >/dev/null; then exit 0; fi; \
	echo "browser-tools: chromium or chromedriver missing and not installable with apt-get: the portal's browser test is SKIPPED"

## SoftHSM2, the PKCS#11 token of the key-store tests and of `make run HSM=1`, from Debian's
## package where apt can install it; without it those tests are SKIPPED.
hsm-tools:
	@if command -v softhsm2-util >/dev/null; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get install -y -qq softhsm2 >/dev/null; then exit 0; fi; \
	echo "hsm-tools: softhsm2 missing and not installable with apt-get: the PKCS#11 tests are SKIPPED"

## A SoftHSM2 token for CA keys in $(HSM_DIR)/ (made once, a random PIN in $(HSM_DIR)/pin); prints
## the settings that point the service at it. `make run HSM=1` uses it.
hsm-token: venv hsm-tools
	@$(BIN)/python -m devtools.softhsm --dir $(HSM_DIR)

## Benchmarks: see bench/run.py; writes bench/RESULTS.md; exits non-zero when a target is missed.
## The peer (cfssl) and the load generator (wrk) come from Debian's packages where apt can install.
bench: venv bench-tools hsm-tools
	$(BIN)/python -m bench.run

bench-tools:
	@missing=""; \
	command -v cfssl >/dev/null || missing="$$missing golang-cfssl"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "bench:$$missing not installed, no apt-get as root: those rows are SKIPPED"; \
		fi; \
	fi
