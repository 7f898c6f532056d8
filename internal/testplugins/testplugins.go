// Package testplugins gives tests the repository's plugins, built from
// source on first use by internal/pluginbuild (cached by a hash of their
// inputs, so no prior `make plugins` is needed). Its functions fail the
// test when a plugin cannot be built. Its own tests run the Go example and
// hostile plugins, and so the Go SDK, on a minimal wazero host; the same
// plugins run on the real host runtime, on every engine, in
// host/enginetest.RunPlugins.
package testplugins

import (
	"os"
	"testing"

	"github.com/wasmcorn/wasmcorn/internal/pluginbuild"
)

// Build returns the path of the built .wasm of plugin name, building it if
// needed; it fails the test when the plugin cannot be built. The file is
// shared by every test: do not modify it.
func Build(t testing.TB, name string) string {
	t.Helper()
	p, err := pluginbuild.Compile(name)
	if err != nil {
		t.Fatalf("build plugin %s: %v", name, err)
	}
	return p
}

// Bytes is Build followed by reading the file.
func Bytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(Build(t, name))
	if err != nil {
		t.Fatalf("read plugin %s: %v", name, err)
	}
	return b
}

// RepoRoot returns the directory of the root module (pluginbuild.RepoRoot),
// for tests that read files of the repository.
func RepoRoot() (string, error) { return pluginbuild.RepoRoot() }
