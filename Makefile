# wasmcorn — the Makefile is the interface: CI calls `make test` and nothing else.
#   make run      build everything and serve the example plugins on http://127.0.0.1:8080
#   make test     install what is missing, build plugins, run every test (race detector on)
#   make bench    run the benchmark suite (bench/RESULTS.md)
#   make plugins  build the example plugins into plugins/NAME.wasm
#   make lint     gofmt + go vet

SHELL := /bin/bash
GO    ?= go
BIN   := bin/wasmcorn
export GOFLAGS := -buildvcs=false

.PHONY: all build run test test-go test-unit lint deps clean

all: build plugins

build: $(BIN)

$(BIN): $(shell find abi host server internal cmd -name '*.go' -not -name '*_test.go' 2>/dev/null) go.mod go.sum
	@mkdir -p bin
	$(GO) build -o $@ ./cmd/wasmcorn

# Debian packages the tests need (MariaDB, Redis, wabt); idempotent and fast when present.
deps:
	@bash scripts/deps.sh test

run: build plugins
	./$(BIN) serve

# Fragments owned by their directories.
-include plugins/plugins.mk
-include sdk-python/python.mk
-include bench/bench.mk
# wasmtime (cgo, ~200 MB module download): build-wasmtime, test-wasmtime
# (part of `make test`), bench-wasmtime.
-include host/wasmtime/wasmtime.mk

lint:
	@out=$$(gofmt -l abi host server internal cmd bench sdk-go plugins 2>/dev/null); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@# Handler authors develop on macOS too: the binary must build there.
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/wasmcorn

# Plain unit tests, no external services needed beyond what tests start themselves.
test-unit:
	$(GO) test ./...

# Everything under the race detector, then the packages whose functional
# end-to-end tests (real plugins compiled by wazero, too slow under -race)
# and allocation proofs skip themselves there, once more without it.
test-go: deps plugins
	$(GO) vet ./...
	$(GO) test -race -timeout 25m ./...
	$(GO) test -count=1 -timeout 15m ./host ./server/... ./internal/cli
	cd sdk-go && $(GO) test -race ./... && $(GO) test -count=1 -run Allocs ./...

test: lint test-go $(TEST_EXTRA)
	@echo "make test: all suites passed"

clean:
	rm -rf bin
