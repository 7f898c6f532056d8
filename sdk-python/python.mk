# python.mk: the Python runtime, the Python example plugins and their tests.
# The root Makefile includes it; paths are relative to the repository root.
#
#   make python-runtime   CPython for wasm32-wasi + the wasmcorn shim, from
#                         Debian source packages, cached in
#                         ~/.cache/wasmcorn/python (a hit takes seconds)
#   make python-wizer     install wizer (npm) for pre-initialized plugins
#   make python-plugins   plugins/py-NAME/ -> plugins/py-NAME.wasm
#   make test-python      native SDK tests (Debian python3 + pytest) and the
#                         plugins' own tests; the wasm tests are Go tests
#                         (sdk-python/internal/harness, sdk-python/pyplugin)
#                         that `go test ./...` runs (test-python-wasm alone)
#
# PYTHON_WIZER=off builds plugins without pre-initialization.

PY_BUILD_PYTHON ?= /usr/bin/python3.11
PY_TOOL := $(PY_BUILD_PYTHON) sdk-python/tools/wasmcorn_py.py
PY_RUNTIME := sdk-python/build/runtime/wasmcorn-python.wasm
PY_CACHE ?= $(HOME)/.cache/wasmcorn
PY_WIZER_VERSION ?= 11.0.3
PY_WIZER_BIN := $(PY_CACHE)/wizer/node_modules/.bin/wizer
PYTHON_WIZER ?= auto

PY_PLUGINS := $(patsubst plugins/%/app.py,%,$(wildcard plugins/py-*/app.py))
PY_PLUGIN_WASM := $(PY_PLUGINS:%=plugins/%.wasm)
PY_SDK_SRCS := $(wildcard sdk-python/wasmcorn/*.py) sdk-python/tools/wasmcorn_py.py

.PHONY: python-runtime python-wizer python-plugins python-plugins-clean test-python test-python-wasm

# The runtime script decides itself whether anything needs building (its
# cache is keyed by its inputs), so this target always runs it.
python-runtime:
	@bash scripts/deps.sh python
	@bash sdk-python/runtime/build.sh -q

$(PY_RUNTIME):
	@$(MAKE) --no-print-directory python-runtime

python-wizer: $(PY_WIZER_BIN)

$(PY_WIZER_BIN):
	@mkdir -p $(PY_CACHE)/wizer
	cd $(PY_CACHE)/wizer && npm install --no-audit --no-fund --silent --prefix . @bytecodealliance/wizer@$(PY_WIZER_VERSION)

python-plugins: python-runtime $(if $(filter off,$(PYTHON_WIZER)),,python-wizer) $(PY_PLUGIN_WASM)

# py_plugin_rule(name)
define py_plugin_rule
plugins/$(1).wasm: $$(shell find plugins/$(1) -type f -not -path '*/__pycache__/*' 2>/dev/null) $$(PY_SDK_SRCS) $$(PY_RUNTIME)
	@echo "wasm  $$@"
	@$$(PY_TOOL) build plugins/$(1) -o $$@ --wizer $$(PYTHON_WIZER)
endef
$(foreach p,$(PY_PLUGINS),$(eval $(call py_plugin_rule,$(p))))

python-plugins-clean:
	rm -f $(PY_PLUGIN_WASM)

plugins: python-plugins

test-python: python-plugins
	$(PY_BUILD_PYTHON) -m pytest -q sdk-python/tests
	@for p in $(PY_PLUGINS); do \
	  if ls plugins/$$p/test_*.py >/dev/null 2>&1; then \
	    echo "pytest plugins/$$p"; \
	    (cd plugins/$$p && PYTHONPATH=$(CURDIR)/sdk-python $(PY_BUILD_PYTHON) -m pytest -q -p no:cacheprovider) || exit 1; \
	  fi; \
	done

test-python-wasm: python-plugins
	$(GO) test -race ./sdk-python/...

TEST_EXTRA += test-python
