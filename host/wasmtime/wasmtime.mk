# wasmtime.mk: the optional wasmtime engine (cgo), a separate Go module in
# host/wasmtime. The root Makefile includes it, so paths are relative to the
# repository root.
#
#   make build-wasmtime  bin/wasmcorn-wasmtime: the server with both engines
#                        (go build -tags wasmtime ./cmd/wasmcorn; cgo)
#   make test-wasmtime   vet, then the engine conformance kit, the Go example,
#                        hostile and Python plugins, and the GC tests on
#                        wasmtime (race detector on); also builds the binary.
#                        Part of `make test` (TEST_EXTRA below).
#   make bench-wasmtime  side-by-side benchmarks, wazero vs wasmtime (vs
#                        native Go where the same work can run natively);
#                        WASMTIME_BENCH selects (a -bench regexp),
#                        WASMTIME_BENCHCOUNT repeats (default 5);
#                        BenchmarkAB compares two builds of one plugin
#                        (WC_AB_A, WC_AB_B; see host/wasmtime/ab_test.go)
#
# The first run downloads github.com/bytecodealliance/wasmtime-go (a 57 MB
# zip, about 200 MB unpacked, with a prebuilt static libwasmtime) into the Go
# module cache and compiles the plugins once (cached under
# ~/.cache/wasmcorn/host-test-compiled); later runs reuse both. The root
# go.mod does not require that module: only this directory's go.mod does,
# and host/wasmtime/go.work joins the two modules for the tagged build, so
# a default build neither downloads it nor needs cgo.
#
# Time (2 shared cores): about 1 minute warm; about 5 minutes with an empty
# compiled-plugin cache (Cranelift compiles every example and hostile plugin
# once, a few seconds each); the first build of the cgo package and the
# module download add a few minutes once per machine. The race detector is
# not the cost (the same run without it differs by seconds), so it stays on.

WASMTIME_DIR        := host/wasmtime
WASMTIME_WORK       := $(CURDIR)/$(WASMTIME_DIR)/go.work
WASMTIME_BIN        := bin/wasmcorn-wasmtime
WASMTIME_BENCH      ?= .
WASMTIME_BENCHTIME  ?= 1s
WASMTIME_BENCHCOUNT ?= 5
WASMTIME_ENV        := CGO_ENABLED=1 GOWORK=$(WASMTIME_WORK)

.PHONY: build-wasmtime test-wasmtime bench-wasmtime wasmtime-deps

wasmtime-deps:
	@bash scripts/deps.sh wasmtime

build-wasmtime: wasmtime-deps
	@mkdir -p bin
	$(WASMTIME_ENV) $(GO) build -tags wasmtime -o $(WASMTIME_BIN) ./cmd/wasmcorn

# plugins: the Python and example plugins the kit runs (it skips the Python
# ones when they are not built).
test-wasmtime: build-wasmtime plugins
	cd $(WASMTIME_DIR) && $(WASMTIME_ENV) $(GO) vet ./...
	cd $(WASMTIME_DIR) && $(WASMTIME_ENV) $(GO) test -race -timeout 20m ./...

bench-wasmtime: wasmtime-deps
	cd $(WASMTIME_DIR) && $(WASMTIME_ENV) $(GO) test -run '^$$' -bench '$(WASMTIME_BENCH)' \
		-benchtime $(WASMTIME_BENCHTIME) -count $(WASMTIME_BENCHCOUNT) -timeout 60m .

TEST_EXTRA += test-wasmtime
