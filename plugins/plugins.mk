# plugins.mk builds the Go plugins; the root Makefile includes it, so paths
# are relative to the repository root.
#
#   make plugins            every example plugin to plugins/NAME.wasm and
#                           every test plugin to plugins/testdata/NAME.wasm
#   make plugins-examples   only plugins/NAME.wasm (the deploy layout)
#   make plugins-testdata   only plugins/testdata/NAME.wasm
#   make plugins-clean      remove what these targets built
#
# A Go plugin is a directory with a go.mod: plugins/NAME/ (examples, served
# by default) or plugins/testdata/NAME/ (hostile plugins for tests, never
# deployed). Each is built as a WASI reactor with -buildmode=c-shared,
# unless one of its Go files has the line //wasmcorn:command (a plain WASI
# command). Builds are incremental: a plugin is rebuilt when its own files,
# the SDK (sdk-go/) or the abi package change. The flags match
# internal/pluginbuild, which builds the same plugins on demand for tests.

PLUGINS_DIR ?= plugins
PLUGIN_GO ?= go
PLUGIN_GOFLAGS ?= -trimpath -buildvcs=false
PLUGIN_ENV = GOOS=wasip1 GOARCH=wasm GOFLAGS="$(PLUGIN_GOFLAGS)" GOWORK=off

PLUGIN_EXAMPLES := $(patsubst $(PLUGINS_DIR)/%/go.mod,%,$(wildcard $(PLUGINS_DIR)/*/go.mod))
PLUGIN_TESTDATA := $(patsubst $(PLUGINS_DIR)/testdata/%/go.mod,%,$(wildcard $(PLUGINS_DIR)/testdata/*/go.mod))
PLUGIN_EXAMPLE_WASM := $(PLUGIN_EXAMPLES:%=$(PLUGINS_DIR)/%.wasm)
PLUGIN_TESTDATA_WASM := $(PLUGIN_TESTDATA:%=$(PLUGINS_DIR)/testdata/%.wasm)

# What every plugin build reads besides the plugin's own directory.
PLUGIN_SDK_SRCS := $(shell find sdk-go abi -maxdepth 3 \( -name '*.go' -o -name '*.s' -o -name go.mod -o -name go.sum \) \
	-not -name '*_test.go' -not -path '*/testdata/*' -not -path 'abi/internal/*' 2>/dev/null) go.mod

.PHONY: plugins plugins-examples plugins-testdata plugins-clean
plugins: plugins-examples plugins-testdata
plugins-examples: $(PLUGIN_EXAMPLE_WASM)
plugins-testdata: $(PLUGIN_TESTDATA_WASM)

# plugin_rule(output, source directory)
define plugin_rule
$(1): $$(wildcard $(2)/*.go $(2)/*.s $(2)/go.mod $(2)/go.sum) $$(PLUGIN_SDK_SRCS)
	@echo "wasm  $$@"
	@cd $(2) && $$(PLUGIN_ENV) $$(PLUGIN_GO) build \
		$$(if $$(shell grep -lsx '//wasmcorn:command' $(2)/*.go),,-buildmode=c-shared) \
		-o $$(abspath $$@).tmp . && mv -f $$(abspath $$@).tmp $$(abspath $$@)
endef

$(foreach p,$(PLUGIN_EXAMPLES),$(eval $(call plugin_rule,$(PLUGINS_DIR)/$(p).wasm,$(PLUGINS_DIR)/$(p))))
$(foreach p,$(PLUGIN_TESTDATA),$(eval $(call plugin_rule,$(PLUGINS_DIR)/testdata/$(p).wasm,$(PLUGINS_DIR)/testdata/$(p))))

plugins-clean:
	rm -f $(PLUGIN_EXAMPLE_WASM) $(PLUGIN_TESTDATA_WASM)
