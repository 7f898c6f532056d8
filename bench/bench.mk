# bench.mk: the benchmark suite (bench/). The root Makefile includes it, so
# paths are relative to the repository root.
#
#   make bench          every scenario on wasmcorn and the native Go server
#                       (and the classic stacks when installed, and wasmtime
#                       when bin/wasmcorn-wasmtime is built); writes
#                       bench/results/DATE-HOST.{md,json,svg}, bench/RESULTS.md
#                       and bench/chart.svg
#   make bench-classic  install nginx, gunicorn, gevent, uwsgi, Django
#                       (scripts/deps.sh classic), then run `make bench` with them
#   make bench-smoke    the short smoke run of every scenario (a Go test; make
#                       test runs it too)
#   make bench-wrk      compare bench/loadgen with wrk on the native /json
#                       endpoint (installs wrk from Debian)
#
# BENCH_FLAGS passes options to the suite, e.g.
#   make bench BENCH_FLAGS="-scenarios json,db -d 20s -repeat 5"
# (see `bin/wcbench -h`).

BENCH_BIN   := bin/wcbench
# The wasmcorn-wasmtime target runs when bin/wasmcorn-wasmtime exists (make
# build-wasmtime once); make bench then rebuilds it, so it is never stale.
BENCH_WASMTIME := $(if $(wildcard bin/wasmcorn-wasmtime),bin/wasmcorn-wasmtime)
BENCH_TARGETS  := -wasmcorn $(BIN)$(if $(BENCH_WASMTIME), -wasmtime $(BENCH_WASMTIME))
BENCH_FLAGS ?= -repeat 3
BENCH_SRCS  := $(shell find bench -name '*.go' -not -name '*_test.go' -not -path 'bench/plugins/*' 2>/dev/null) \
	$(wildcard bench/classic/django/benchapp/*.py)

.PHONY: bench bench-classic bench-smoke bench-wrk bench-tools bench-python

# The py-* scenarios build their plugin from sdk-python, which needs the
# Python runtime (cached by its inputs: seconds when nothing changed) and
# wizer; without them the suite would skip those scenarios.
bench-python: python-runtime $(if $(filter off,$(PYTHON_WIZER)),,python-wizer)

$(BENCH_BIN): $(BENCH_SRCS) go.mod go.sum
	@mkdir -p bin
	$(GO) build -o $@ ./bench/cmd/wcbench

bench: deps build bench-python $(BENCH_BIN) $(if $(BENCH_WASMTIME),build-wasmtime)
	WCBENCH_COMMAND="make bench$(if $(BENCH_FLAGS), BENCH_FLAGS=\"$(BENCH_FLAGS)\")" \
		./$(BENCH_BIN) $(BENCH_TARGETS) -out bench/results -summary bench/RESULTS.md $(BENCH_FLAGS)

bench-classic: deps build bench-python $(BENCH_BIN) $(if $(BENCH_WASMTIME),build-wasmtime)
	@bash scripts/deps.sh classic
	WCBENCH_COMMAND="make bench-classic$(if $(BENCH_FLAGS), BENCH_FLAGS=\"$(BENCH_FLAGS)\")" \
		./$(BENCH_BIN) -classic yes $(BENCH_TARGETS) -out bench/results -summary bench/RESULTS.md $(BENCH_FLAGS)

bench-smoke: deps
	$(GO) test -count=1 -run 'TestSmoke' -v ./bench/suite/

# wrk is only a yardstick for the load generator, never a test dependency.
bench-tools:
	@command -v wrk >/dev/null || { \
		SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }

bench-wrk: bench-tools $(BENCH_BIN)
	@bash bench/wrk-compare.sh ./$(BENCH_BIN)
