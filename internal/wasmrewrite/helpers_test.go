package wasmrewrite

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

var update = flag.Bool("update", false, "regenerate testdata/*.wasm from testdata/*.wat with wat2wasm")

// allFeatures are the wazero features the testdata modules use.
const allFeatures = api.CoreFeaturesV2 | experimental.CoreFeaturesThreads |
	experimental.CoreFeaturesTailCall | experimental.CoreFeaturesExceptionHandling

// readWasm returns testdata/name.wasm.
func readWasm(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// instrument is InstrumentLoops that fails the test on error.
func instrument(t testing.TB, wasm []byte, opts Options) []byte {
	t.Helper()
	out, err := InstrumentLoops(wasm, opts)
	if err != nil {
		t.Fatalf("InstrumentLoops: %v", err)
	}
	return out
}

// newRuntime returns a compiler-mode runtime with allFeatures, closed with the test.
func newRuntime(t testing.TB) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(allFeatures))
	t.Cleanup(func() { r.Close(ctx) })
	return r
}

// watFlags returns the wat2wasm flags declared in a .wat file's
// ";; wat2wasm-flags:" line.
func watFlags(src []byte) []string {
	for _, line := range strings.Split(string(src), "\n") {
		if f, ok := strings.CutPrefix(line, ";; wat2wasm-flags:"); ok {
			return strings.Fields(f)
		}
	}
	return nil
}

// TestTestdataUpToDate checks that every testdata/*.wasm is what wat2wasm
// makes of its .wat source (with -update, rewrites them).
func TestTestdataUpToDate(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm not on PATH (Debian package wabt, scripts/deps.sh test)")
	}
	wats, err := filepath.Glob(filepath.Join("testdata", "*.wat"))
	if err != nil || len(wats) == 0 {
		t.Fatalf("no testdata/*.wat: %v", err)
	}
	for _, wat := range wats {
		name := strings.TrimSuffix(filepath.Base(wat), ".wat")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(wat)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), name+".wasm")
			args := append(watFlags(src), wat, "-o", out)
			if b, err := exec.Command("wat2wasm", args...).CombinedOutput(); err != nil {
				t.Fatalf("wat2wasm %s: %v\n%s", strings.Join(args, " "), err, b)
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			committed := filepath.Join("testdata", name+".wasm")
			if *update {
				if err := os.WriteFile(committed, want, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := os.ReadFile(committed)
			if err != nil {
				t.Fatalf("%v (run go test -run TestTestdataUpToDate -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s is stale: run go test -run TestTestdataUpToDate -update", committed)
			}
		})
	}
}

// wasmValidate runs wabt's wasm-validate on b when it is on PATH.
func wasmValidate(t *testing.T, b []byte) {
	t.Helper()
	if _, err := exec.LookPath("wasm-validate"); err != nil {
		return
	}
	f := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("wasm-validate", "--enable-tail-call", "--enable-exceptions", "--enable-threads", f).CombinedOutput()
	if err != nil {
		if len(out) > 2000 {
			out = out[:2000]
		}
		t.Fatalf("wasm-validate: %v\n%s", err, out)
	}
}
