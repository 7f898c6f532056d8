package host_test

import (
	"context"
	"os"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
)

// TestPluginFilesSectionMounted: a Python plugin carries its app and
// standard library in a files section; the host mounts it at /wasmcorn
// without any manifest grant, and the plugin answers.
func TestPluginFilesSectionMounted(t *testing.T) {
	wasm, err := os.ReadFile("../plugins/py-hello.wasm")
	if err != nil {
		t.Skip("plugins/py-hello.wasm not built (make python-plugins):", err)
	}
	rt, err := host.NewRuntime(host.RuntimeOptions{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	p, err := rt.Load(context.Background(), host.PluginSpec{Name: "py-hello", Wasm: wasm,
		Pool: host.PoolConfig{Min: 1, Max: 1, MaxWait: 1e9}, Limits: host.DefaultLimits()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Drain(context.Background())
	req := abi.AppendRequest(nil, &abi.Request{Method: []byte("GET"), Scheme: []byte("http"),
		Host: []byte("t"), Path: []byte("/py-hello/"), RequestID: []byte("r1")})
	out, err := p.Handle(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	var resp abi.Response
	if err := abi.DecodeResponse(out, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || len(resp.Body) == 0 {
		t.Fatalf("status %d body %q", resp.Status, resp.Body)
	}
}
