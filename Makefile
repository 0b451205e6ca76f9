# The few commands people type. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash

.PHONY: test stack-up stack-down stack-env stack-status

## test: start the local stack (Kafka + FerretDB), vet, run every test, stop what it started
test:
	scripts/test

## stack-up: start the local Kafka + FerretDB-on-PostgreSQL stack (docs/local-stack.md)
stack-up:
	scripts/stack up

## stack-down: stop the local stack (data kept in $${STATESYNC_STACK_DIR:-/tmp/statesync-stack})
stack-down:
	scripts/stack down

## stack-env: print the STATESYNC_TEST_* export lines; use: eval "$$(make -s stack-env)"
stack-env:
	@scripts/stack env

stack-status:
	@scripts/stack status
