package wasmrewrite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// buildGoGuest builds testdata/goguest/<pkg> with GOOS=wasip1 GOARCH=wasm.
func buildGoGuest(t testing.TB, pkg string, extra ...string) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and compiles a Go wasm binary: slow")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not on PATH")
	}
	out := filepath.Join(t.TempDir(), pkg+".wasm")
	args := append([]string{"build", "-o", out}, extra...)
	cmd := exec.Command(gobin, append(args, "./"+pkg)...)
	cmd.Dir = filepath.Join("testdata", "goguest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newWASIRuntime(t *testing.T) wazero.Runtime {
	t.Helper()
	r := newRuntime(t)
	wasi_snapshot_preview1.MustInstantiate(context.Background(), r)
	return r
}

// runCommand runs a wasip1 command and returns its stdout.
func runCommand(t *testing.T, r wazero.Runtime, wasm []byte) string {
	t.Helper()
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	cfg := wazero.NewModuleConfig().WithName("").WithArgs("guest", "a", "b").
		WithStdout(&stdout).WithStderr(&stderr)
	mod, err := r.InstantiateWithConfig(ctx, wasm, cfg)
	var exit *sys.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 0) {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	if mod != nil {
		mod.Close(ctx)
	}
	return stdout.String()
}

func TestGoCommand(t *testing.T) {
	wasm := buildGoGuest(t, "command")
	out := instrument(t, wasm, Options{TickEvery: 97})
	r := newWASIRuntime(t)
	want := runCommand(t, r, wasm)
	if !bytes.Contains([]byte(want), []byte("sha256: ")) || !bytes.Contains([]byte(want), []byte("args: 3")) {
		t.Fatalf("unexpected output of the original program:\n%s", want)
	}
	if got := runCommand(t, r, out); got != want {
		t.Fatalf("instrumented output differs\n got: %s\nwant: %s", got, want)
	}
	t.Logf("go command: %d bytes -> %d bytes instrumented", len(wasm), len(out))
}

func TestGoReactor(t *testing.T) {
	wasm := buildGoGuest(t, "reactor", "-buildmode=c-shared")
	out := instrument(t, wasm, Options{TickEvery: 97})
	r := newWASIRuntime(t)
	run := func(wasm []byte) [][]uint64 {
		ctx := context.Background()
		mod, err := r.InstantiateWithConfig(ctx, wasm,
			wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
		if err != nil {
			t.Fatalf("instantiate: %v", err)
		}
		defer mod.Close(ctx)
		var res [][]uint64
		for _, c := range []call{
			{"compute", []uint64{1000}}, {"compute", []uint64{50000}}, {"checksum", []uint64{1 << 16}},
			{"compute", []uint64{7}}, {"calls", nil},
		} {
			v, err := mod.ExportedFunction(c.export).Call(ctx, c.args...)
			if err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			res = append(res, v)
		}
		return res
	}
	want := run(wasm)
	if got := want[len(want)-1]; len(got) != 1 || got[0] != 4 {
		t.Fatalf("calls = %v, want [4]", got)
	}
	if got := run(out); !reflect.DeepEqual(got, want) {
		t.Fatalf("instrumented results %v, want %v", got, want)
	}
}
