# The few commands people type. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash

.PHONY: demo build test soak lint bench stack-up stack-down stack-env stack-status

## demo: start the local stack, publish sample users, import them into FerretDB, check the count
demo:
	scripts/demo

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)

## build: bin/statesync (statesync version says VERSION and COMMIT)
build:
	go build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o bin/statesync ./cmd/statesync

## image: build the image from the Dockerfile with podman and run it against the local stack (scripts/image)
image:
	scripts/image test

## lint: gofmt, go vet, and shellcheck on every shell script in the repository (found by its #! line)
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	@command -v shellcheck >/dev/null || { echo "lint: shellcheck not found: apt-get install shellcheck (.ci/run installs it)" >&2; exit 1; }
	@scripts=(); \
	while IFS= read -r f; do \
		[[ -f $$f && $$(head -n 1 "$$f") =~ ^\#!(/usr)?/bin/(env\ +)?(ba)?sh([[:space:]]|$$) ]] && scripts+=("$$f"); \
	done < <(git ls-files); \
	echo "shellcheck $${scripts[*]}"; \
	shellcheck "$${scripts[@]}"

## test: start the local stack (Kafka + FerretDB), vet, run every test, stop what it started
test:
	scripts/test

## soak: the model checker (test/e2e/model_test.go) on consecutive seeds against the local stack:
## make soak SEEDS=200 | make soak SOAK_DURATION=30m (default 50 seeds); SOAK_FIRST=n starts at seed n
## (default: from the clock). Each failing seed logs the command that replays it; bounded by a watchdog.
SEEDS ?=
SOAK_DURATION ?=
SOAK_FIRST ?=
soak:
	scripts/stack up
	eval "$$(scripts/stack env)" && count="$(SEEDS)" && \
	if [[ -z $$count && -z "$(SOAK_DURATION)" ]]; then count=50; fi && \
	STATESYNC_MODEL_COUNT="$$count" STATESYNC_MODEL_DURATION="$(SOAK_DURATION)" STATESYNC_MODEL_FIRST="$(SOAK_FIRST)" \
		go test -count=1 -timeout 0 -run 'TestModel$$' -v ./test/e2e/

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
